import Glibc
import NpfsTestSupport
import PipeCluster
import PipeCore
import Synchronization
import Testing

/// The cluster executor under two registries, as two hosts' mounts would use it, on a
/// PostgreSQL server of the test's own.
@Suite(.serialized) struct SharedPipeTests {
    /// A waiter that records its one reply and can be waited for.
    final class Waiter: PipeWaiter {
        private let state = Mutex<(replies: [PipeReply], interrupted: Bool)>(([], false))
        var isInterrupted: Bool { state.withLock { $0.interrupted } }
        func interrupt() { state.withLock { $0.interrupted = true } }
        func resume(_ reply: PipeReply) { state.withLock { $0.replies.append(reply) } }
        var replies: [PipeReply] { state.withLock { $0.replies } }

        /// The reply, waiting up to `timeout` seconds for it.
        func reply(within timeout: Double = 10) -> PipeReply? {
            _ = eventually(timeout: timeout) { !replies.isEmpty }
            return replies.first
        }
    }

    struct Host {
        let store: PostgresPipeStore
        let registry: PipeRegistry
        let inode: InodeNumber

        init(_ server: PostgresServer, space: String = "default", name: String) throws {
            store = try PostgresPipeStore(settings: ClusterSettings(target: try ClusterTarget(server.url()), space: space, hostName: name))
            registry = PipeRegistry(configuration: .init(pipe: .defaults), store: store)
            inode = registry.lookup(try PipeName("P"))
        }

        func open(_ flags: Int32) -> (OpenResult, Waiter) {
            let waiter = Waiter()
            return (registry.open(inode, flags: flags, caller: Caller(uid: 0, gid: 0), waiter: waiter), waiter)
        }

        /// An open that must complete within the timeout: its handle.
        func opened(_ waiter: Waiter) throws -> PipeHandle {
            guard case .opened(let handle) = waiter.reply() else { throw TestFailure("open: \(waiter.replies)") }
            return handle
        }

        func read(_ handle: PipeHandle, _ size: Int = 100, flags: Int32 = 0) -> Waiter {
            let waiter = Waiter()
            _ = registry.read(handle, size: size, offset: 0, flags: flags, waiter: waiter, sink: nil)
            return waiter
        }

        func write(_ handle: PipeHandle, _ text: String, flags: Int32 = 0) -> Waiter {
            let waiter = Waiter()
            _ = Array(text.utf8).withUnsafeBytes { registry.write(handle, bytes: $0, offset: 0, flags: flags, waiter: waiter) }
            return waiter
        }
    }

    @Test func aWriterOnOneHostAndAReaderOnAnotherMeetAndTalkAndEnd() throws {
        try PostgresServer.with { server in
            let a = try Host(server, name: "a")
            let b = try Host(server, name: "b")
            defer { a.store.leave(); b.store.leave() }
            #expect(a.store.host != b.store.host)

            // The writer waits for a reader, which comes on the other host.
            let (writerAttempt, writerOpen) = a.open(O_WRONLY)
            #expect(writerAttempt == .queued)
            usleep(200_000)
            #expect(writerOpen.replies.isEmpty, "a writer opened with no reader anywhere")
            let (_, readerOpen) = b.open(O_RDONLY)
            let reader = try b.opened(readerOpen)
            let writer = try a.opened(writerOpen)

            // Bytes written on A are read on B; a read that waits on B is woken by A's write.
            #expect(a.write(writer, "hello").reply() == .written(5))
            #expect(b.read(reader).reply() == .data(Array("hello".utf8)))
            let waiting = b.read(reader)
            usleep(200_000)
            #expect(waiting.replies.isEmpty)
            #expect(a.write(writer, "again").reply() == .written(5))
            #expect(waiting.reply() == .data(Array("again".utf8)))

            // The last writer anywhere closes: the reader sees end of file.
            let atEnd = b.read(reader)
            a.registry.release(writer)
            #expect(atEnd.reply() == .data([]))
            #expect(a.registry.openCount == 0)

            // A writer with no reader left: EPIPE; a non-blocking writer's open with none: ENXIO.
            let (_, second) = a.open(O_WRONLY)
            let writer2 = try a.opened(second)
            b.registry.release(reader)
            #expect(eventually(timeout: 10) { a.write(writer2, "x").reply() == .failed(.brokenPipe) })
            a.registry.release(writer2)
            let (_, nonblocking) = a.open(O_WRONLY | O_NONBLOCK)
            #expect(nonblocking.reply() == .failed(.noSuchAddressOrDevice))
            #expect(eventually(timeout: 10) { a.registry.openCount == 0 && b.registry.openCount == 0 })
            #expect(try server.admin("SELECT count(*) FROM npfs.pipes", database: "npfs") == "0")
            #expect(try server.admin("SELECT count(*) FROM npfs.opens", database: "npfs") == "0")
        }
    }

    @Test func anInterruptedWaitIsAnsweredOnceAndLeavesNoTrace() throws {
        try PostgresServer.with { server in
            let a = try Host(server, name: "a")
            defer { a.store.leave() }
            let (_, open) = a.open(O_RDONLY)
            usleep(200_000)
            #expect(open.replies.isEmpty)
            open.interrupt()
            a.registry.interrupt(open, inode: a.inode)
            #expect(open.reply() == .failed(.interrupted))
            #expect(eventually(timeout: 10) { a.registry.openCount == 0 })
            #expect(try server.admin("SELECT count(*) FROM npfs.opens", database: "npfs") == "0")
        }
    }
}
