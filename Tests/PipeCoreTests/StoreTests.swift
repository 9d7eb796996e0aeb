import Dispatch
import PipeCore
import Synchronization
import SystemPackage
import Testing

/// The registry and its store: pipes are attached and detached through the store, and
/// the registry never calls a pipe while it holds its own lock.
@Suite struct StoreTests {
    typealias F = Fixture

    /// Counts the calls to its pipes and those made while the registry's lock was held
    /// (another thread could not read the registry within two seconds).
    final class WatchingStore: PipeStore {
        let local: LocalPipeStore
        let registry = Mutex<PipeRegistry?>(nil)
        let counts = Mutex((calls: 0, underLock: 0))

        init(limits: MountLimits) { local = LocalPipeStore(limits: limits) }

        let attached = Mutex<[[UInt8]: WatchedPipe]>([:])

        func attach(_ key: [UInt8], config: PipeConfig, ownership: Ownership) -> any PipeEndpoint {
            let pipe = local.attach(key, config: config, ownership: ownership)
            return attached.withLock { attached in
                if let watched = attached[key] { return watched }
                let watched = WatchedPipe(pipe, store: self)
                attached[key] = watched
                return watched
            }
        }
        func detach(_ key: [UInt8]) {
            local.detach(key)
            attached.withLock { $0[key] = nil }
        }
        func list() -> [any PipeEndpoint] { attached.withLock { Array($0.values) } }
        func waitingBytes(of uid: UInt32) -> (total: Int, user: Int) { local.waitingBytes(of: uid) }

        func check() {
            guard let registry = registry.withLock({ $0 }) else { return }
            let free = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                _ = registry.openCount
                free.signal()
            }
            let held = free.wait(timeout: .now() + 2) == .timedOut
            counts.withLock { ($0.calls, $0.underLock) = ($0.calls + 1, $0.underLock + (held ? 1 : 0)) }
        }
    }

    /// A pipe that reports each call to its store before passing it on.
    final class WatchedPipe: PipeEndpoint {
        let pipe: any PipeEndpoint
        let store: WatchingStore
        init(_ pipe: any PipeEndpoint, store: WatchingStore) { (self.pipe, self.store) = (pipe, store) }

        func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, caller: Caller, protection: PipeProtection,
                  mountOwner: UInt32, waiter: any PipeWaiter) -> OpenAnswer {
            store.check()
            return pipe.open(handle, access: access, nonblocking: nonblocking, caller: caller, protection: protection,
                             mountOwner: mountOwner, waiter: waiter)
        }
        func close(_ handle: PipeHandle, access: AccessMode) { store.check(); pipe.close(handle, access: access) }
        func read(_ handle: PipeHandle, size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
                  sink: ReadSink?) -> ReadResult {
            store.check()
            return pipe.read(handle, size: size, offset: offset, nonblocking: nonblocking, waiter: waiter, sink: sink)
        }
        func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool,
                   waiter: (any PipeWaiter)?, uid: UInt32) -> WriteResult {
            store.check()
            return pipe.write(handle, bytes: bytes, offset: offset, nonblocking: nonblocking, waiter: waiter, uid: uid)
        }
        func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64, notifier: (any PollNotifier)?,
                  replier: (any PollReplier)?) -> PollResult {
            store.check()
            return pipe.poll(handle, access: access, hangUpVersion: hangUpVersion, notifier: notifier, replier: replier)
        }
        func cancel(_ waiter: any PipeWaiter, because reason: Withdrawal, beforeAnswering: (CancelledWait) -> Void) {
            store.check()
            pipe.cancel(waiter, because: reason, beforeAnswering: beforeAnswering)
        }
        func stop(waitingOnly: Bool) -> [PipeHandle] { store.check(); return pipe.stop(waitingOnly: waitingOnly) }
        func apply(_ setting: PipeSetting) throws(Errno) { store.check(); try pipe.apply(setting) }
        var ownership: Ownership { store.check(); return pipe.ownership }
        func unpersist(by caller: Caller) throws(Errno) { store.check(); try pipe.unpersist(by: caller) }
        func changeOwnership(by caller: Caller, permissions: UInt32?, uid: UInt32?, gid: UInt32?) throws(Errno) -> Ownership {
            store.check()
            return try pipe.changeOwnership(by: caller, permissions: permissions, uid: uid, gid: gid)
        }
        var status: PipeStatus { store.check(); return pipe.status }
        func peek(_ max: Int, reader: PipeHandle?) -> [UInt8] { store.check(); return pipe.peek(max, reader: reader) }
        var openFigures: (waiting: [PipeHandle: PipeClient.Waiting], lost: [PipeHandle: UInt64]) { store.check(); return pipe.openFigures }
        func trimBuffers() { store.check(); pipe.trimBuffers() }
        func holdsExactly(readers: Set<PipeHandle>, writers: Int) -> Bool {
            store.check()
            return pipe.holdsExactly(readers: readers, writers: writers)
        }
    }

    @Test func theRegistryNeverCallsAPipeWithItsLockHeld() throws {
        let limits = MountLimits.unlimited
        let store = WatchingStore(limits: limits)
        let registry = PipeRegistry(configuration: .init(pipe: .defaults, limits: limits), store: store)
        store.registry.withLock { $0 = registry }
        let inode = registry.lookup(try PipeName("P"))

        let reader = RecordingWaiter()
        #expect(registry.open(inode, flags: F.read, caller: .root, waiter: reader) == .queued)
        let interrupted = RecordingWaiter()
        #expect(registry.open(inode, flags: F.read, caller: .root, waiter: interrupted) == .queued)
        interrupted.markInterrupted()
        registry.interrupt(interrupted, inode: inode)
        #expect(interrupted.reply == .failed(.interrupted))
        guard case .done(.opened(let writer)) = registry.open(inode, flags: F.write, caller: .root, waiter: RecordingWaiter()),
              case .opened(let readerHandle) = reader.reply else {
            Issue.record("the writer's open completes the reader's"); return
        }
        _ = [UInt8]("hi".utf8).withUnsafeBytes { registry.write(writer, bytes: $0, offset: 0, flags: 0, waiter: nil) }
        #expect(registry.poll(readerHandle, notifier: nil)?.contains(.input) == true)
        #expect(try registry.peek(inode, max: 10, caller: .root) == Array("hi".utf8))
        #expect(registry.read(readerHandle, size: 10, offset: 0, flags: 0, waiter: nil) == .done(.data(Array("hi".utf8))))
        try registry.setAttributes([(.capacity, "8192"), (.mode, "ring")], of: inode, caller: .root)
        _ = try registry.changeOwnership(of: inode, by: .root, permissions: 0o600, uid: 1001, gid: nil)
        #expect(try registry.clients(of: inode, caller: .root).count == 2)
        #expect(!registry.statusPage(from: 0, size: StatusPage.maximumSize, caller: .root).isEmpty)
        #expect(registry.usage.pipes == 1 && registry.usage.reservedByUser[1001, default: 0] > 0, "chown moved the reservation")
        registry.trimIdleBuffers()
        #expect(registry.isConsistent)
        registry.release(writer)
        registry.release(readerHandle)
        #expect(registry.usage.pipes == 0 && store.list().isEmpty, "the last release detaches the pipe")
        let late = RecordingWaiter()
        #expect(registry.open(inode, flags: F.read, caller: .root, waiter: late) == .queued)
        registry.close()
        #expect(late.reply == .failed(.noSuchAddressOrDevice))
        #expect(registry.isConsistent && store.list().isEmpty)

        let (calls, underLock) = store.counts.withLock { $0 }
        #expect(calls >= 20)
        #expect(underLock == 0, "\(underLock) of \(calls) calls to a pipe were made with the registry's lock held")
    }
}
