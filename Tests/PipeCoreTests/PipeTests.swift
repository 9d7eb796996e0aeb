import PipeCore
import SystemPackage
import Testing

/// The fifo(7) decisions of the core, observed through recording waiters.
@Suite struct PipeTests {
    typealias F = Fixture

    @Test func readerOpenWaitsForAWriterAndBothComplete() throws {
        let f = try F()
        let (reader, attempt) = f.openWaiting(F.read)
        #expect(attempt == .queued)
        #expect(reader.reply == nil)
        // The pipe is live while a reader waits in open: `ls` shows it.
        #expect(f.registry.livePipes().map(\.name.description) == ["P"])
        let writer = try f.open(F.write)
        guard case .opened(let readHandle) = reader.reply else { Issue.record("reader not woken"); return }
        #expect(readHandle != writer)
    }

    @Test func writerOpenWaitsForAReader() throws {
        let f = try F()
        let (writer, attempt) = f.openWaiting(F.write)
        #expect(attempt == .queued)
        _ = try f.open(F.read)
        guard case .opened = writer.reply else { Issue.record("writer not woken"); return }
    }

    @Test func nonblockingOpens() throws {
        let f = try F()
        #expect(f.openWaiting(F.write | F.nonblocking).1 == .done(.failed(.noSuchAddressOrDevice)))
        #expect(f.registry.livePipes().isEmpty, "a failed open leaves no pipe")
        let reader = try f.open(F.read | F.nonblocking)
        // No writer: end of file, not EAGAIN.
        #expect(f.read(reader, 10) == .done(.data([])))
        _ = try f.open(F.write | F.nonblocking)
    }

    @Test func readWriteOpenNeverWaitsAndEchoes() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        #expect(f.write(both, Array("hello".utf8)) == .done(.written(5)))
        #expect(f.read(both, 3) == .done(.data(Array("hel".utf8))))
        #expect(f.read(both, 100) == .done(.data(Array("lo".utf8))))
    }

    @Test func emptyReadWaitsOnlyWhileAWriterExists() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        #expect(f.read(both, 10) == .mustWait, "without a waiter nothing is queued")
        #expect(f.read(both, 10, flags: F.nonblocking) == .done(.failed(.resourceTemporarilyUnavailable)))
        // A continuation of a read(2) the kernel split never waits.
        #expect(f.read(both, 10, offset: 4096) == .done(.data([])))
        let waiter = RecordingWaiter()
        #expect(f.read(both, 10, waiter: waiter) == .queued)
        #expect(f.write(both, [1, 2, 3]) == .done(.written(3)))
        #expect(waiter.reply == .data([1, 2, 3]))
    }

    @Test func lastWriterLeavingGivesWaitingReadersEndOfFile() throws {
        let f = try F()
        let reader = try f.open(F.read | F.nonblocking)
        let writer = try f.open(F.write)
        let waiter = RecordingWaiter()
        #expect(f.read(reader, 10, waiter: waiter) == .queued)
        f.registry.release(writer)
        #expect(waiter.reply == .data([]))
    }

    @Test func writeWithoutReadersIsEPIPE() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        let writer = try f.open(F.write)
        f.registry.release(both)
        #expect(f.write(writer, [1]) == .done(.failed(.brokenPipe)))
    }

    @Test func atomicWritesAreAllOrNothing() throws {
        let f = try F(capacity: 8192)
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(6000)) == .done(.written(6000)))
        // 2192 bytes free: a 4096-byte write must not be split.
        #expect(f.write(both, .pattern(4096), flags: F.nonblocking) == .done(.failed(.resourceTemporarilyUnavailable)))
        let waiter = RecordingWaiter()
        #expect(f.write(both, .pattern(4096, seed: 9), waiter: waiter) == .queued)
        #expect(f.read(both, 1000) == .done(.data(Array(Array<UInt8>.pattern(6000).prefix(1000)))))
        #expect(waiter.reply == nil, "3192 free is still too little")
        #expect(f.read(both, 1000).isData)
        #expect(waiter.reply == .written(4096))
        #expect(f.registry.node(f.inode)?.status?.buffered == 8096)
    }

    @Test func largeNonblockingWriteIsPartial() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(61_440)) == .done(.written(61_440)))
        #expect(f.write(both, .pattern(10_000), flags: F.nonblocking) == .done(.written(4096)))
        #expect(f.write(both, .pattern(10_000), flags: F.nonblocking) == .done(.failed(.resourceTemporarilyUnavailable)))
    }

    /// Regression: a blocking write larger than the capacity, with a reader already waiting,
    /// once left the writer queued beside free room and the next reader waiting forever.
    @Test func largeBlockingWriteFlowsThroughWaitingReaders() throws {
        let f = try F()
        let reader = try f.open(F.read | F.nonblocking)
        let writer = try f.open(F.write)
        let firstRead = RecordingWaiter()
        #expect(f.read(reader, 131_072, waiter: firstRead) == .queued)
        let data = [UInt8].pattern(3 << 20)
        let write = RecordingWaiter()
        #expect(f.write(writer, data, waiter: write) == .queued)
        var received: [UInt8] = []
        if case .data(let bytes) = firstRead.reply { received += bytes }
        while received.count < data.count {
            let next = RecordingWaiter()
            switch f.read(reader, 131_072, waiter: next) {
            case .done(.data(let bytes)): received += bytes
            case .queued:
                Issue.record("reader waits with \(data.count - received.count) bytes still to come; writer: \(write.replies)")
                return
            default: Issue.record("unexpected read answer"); return
            }
        }
        #expect(received == data)
        #expect(write.reply == .written(data.count))
    }

    /// A large write meets a waiting reader: its bytes go straight into the reply (up to the
    /// reader's size, past the capacity), and a later read takes the rest from the waiting
    /// writer, in order; the counters account for all of it.
    @Test func largeTransfersBypassTheCapacityInOrder() throws {
        let f = try F()
        let reader = try f.open(F.read | F.nonblocking)
        let writer = try f.open(F.write)
        let firstRead = RecordingWaiter()
        #expect(f.read(reader, 1 << 20, waiter: firstRead) == .queued)
        let data = [UInt8].pattern(3 << 20)
        let write = RecordingWaiter()
        #expect(f.write(writer, data, waiter: write) == .queued)
        #expect(firstRead.reply == .data(Array(data.prefix(1 << 20))), "one reply of 1 MiB from a 64 KiB pipe")
        #expect(f.read(reader, 1 << 20) == .done(.data(Array(data[(1 << 20)..<(2 << 20)]))))
        #expect(write.reply == nil)
        #expect(f.read(reader, 1 << 20) == .done(.data(Array(data[(2 << 20)...]))))
        #expect(write.reply == .written(3 << 20))
        #expect(try f.pipeIsConsistent)
        #expect(f.status?.bytesWritten == 3 << 20 && f.status?.bytesRead == 3 << 20)
    }

    @Test func lastReaderLeavingEndsWaitingWritersWithTheirCountOrEPIPE() throws {
        let f = try F()
        let reader = try f.open(F.read | F.nonblocking)
        let writer = try f.open(F.write)
        let big = RecordingWaiter(), small = RecordingWaiter()
        #expect(f.write(writer, .pattern(100_000), waiter: big) == .queued)
        #expect(f.write(writer, .pattern(10), waiter: small) == .queued)
        f.registry.release(reader)
        #expect(big.reply == .written(65_536))
        #expect(small.reply == .failed(.brokenPipe))
    }

    @Test func interruptedWaitsChangeNothing() throws {
        let f = try F()
        // An open interrupted while waiting does not count as a reader.
        let (opener, attempt) = f.openWaiting(F.read)
        #expect(attempt == .queued)
        opener.markInterrupted()
        f.registry.interrupt(opener, inode: f.inode)
        #expect(opener.reply == .failed(.interrupted))
        #expect(f.openWaiting(F.write | F.nonblocking).1 == .done(.failed(.noSuchAddressOrDevice)))
        #expect(f.registry.livePipes().isEmpty)

        let both = try f.open(F.readWrite)
        let reader = RecordingWaiter()
        #expect(f.read(both, 10, waiter: reader) == .queued)
        reader.markInterrupted()
        f.registry.interrupt(reader, inode: f.inode)
        #expect(reader.reply == .failed(.interrupted))
        #expect(f.write(both, [42]) == .done(.written(1)))
        #expect(f.read(both, 10) == .done(.data([42])), "the interrupted read took nothing")
        // An interrupt that arrives before the request is queued is not lost.
        let early = RecordingWaiter()
        early.markInterrupted()
        #expect(f.read(both, 10, waiter: early) == .done(.failed(.interrupted)))
    }

    @Test func interruptedWriteReportsWhatItTook() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        let writer = RecordingWaiter()
        #expect(f.write(both, .pattern(100_000), waiter: writer) == .queued)
        writer.markInterrupted()
        f.registry.interrupt(writer, inode: f.inode)
        #expect(writer.reply == .written(65_536))
        // Interrupting a request already answered does nothing.
        f.registry.interrupt(writer, inode: f.inode)
        #expect(writer.replies.count == 1)
    }

    @Test func pollMasksFollowPipePoll() throws {
        let f = try F()
        let reader = try f.open(F.read | F.nonblocking)
        // No writer ever seen: no POLLHUP for a nonblocking reader.
        #expect(f.registry.poll(reader, notifier: nil) == [])
        let writer = try f.open(F.write)
        #expect(f.registry.poll(writer, notifier: nil) == [.output, .writeNormal])
        let notifier = RecordingNotifier()
        #expect(f.registry.poll(reader, notifier: notifier) == [])
        #expect(f.write(writer, [1]) == .done(.written(1)))
        #expect(notifier.notifications == 1)
        #expect(f.registry.poll(reader, notifier: nil) == [.input, .readNormal])
        f.registry.release(writer)
        #expect(f.registry.poll(reader, notifier: nil) == [.input, .readNormal, .hangUp])
        let lateWriter = try f.open(F.write)
        f.registry.release(reader)
        #expect(f.registry.poll(lateWriter, notifier: nil) == [.output, .writeNormal, .error])
    }

    @Test func fullPipeIsNotWritable() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(65_536)) == .done(.written(65_536)))
        #expect(f.registry.poll(both, notifier: nil) == [.input, .readNormal])
        _ = f.read(both, 4095)
        #expect(!(f.registry.poll(both, notifier: nil)?.contains(.output) ?? true))
        _ = f.read(both, 1)
        #expect(f.registry.poll(both, notifier: nil)?.contains(.output) == true)
    }

    @Test func lastReleaseFreesThePipeAndItsData() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        _ = f.write(both, [1, 2, 3])
        #expect(f.registry.livePipes().count == 1)
        f.registry.release(both)
        #expect(f.registry.livePipes().isEmpty)
        #expect(f.registry.node(f.inode)?.status == nil)
        let again = try f.open(F.readWrite)
        #expect(f.read(again, 10, flags: F.nonblocking) == .done(.failed(.resourceTemporarilyUnavailable)))
    }

    @Test func forgottenNamesGetNewInodesAndLiveOnesKeepTheirs() throws {
        let f = try F()
        #expect(f.registry.lookup(try PipeName("P")) == f.inode)
        f.registry.forget(f.inode, count: 2)
        #expect(f.registry.node(f.inode) == nil)
        let inode = f.registry.lookup(try PipeName("P"))
        #expect(inode != f.inode)
        #expect(f.registry.lookup(try PipeName("p")) != inode, "names are case-sensitive")
    }

    @Test func namesFollowLinuxRules() throws {
        #expect(throws: Errno.fileNameTooLong) { try PipeName(String(repeating: "x", count: 256)) }
        #expect((try? PipeName(String(repeating: "x", count: 255))) != nil)
        // Bytes, not normalised Unicode: composed and decomposed é are two names.
        #expect(try PipeName("\u{E9}") != PipeName("e\u{301}"))
    }

    @Test func closingAnswersEveryWaiterAndNothingWaitsAfter() throws {
        let f = try F()
        let (opener, _) = f.openWaiting(F.write)
        let other = f.registry.lookup(try PipeName("Q"))
        let both = f.registry.open(other, flags: F.readWrite, caller: .alice, waiter: RecordingWaiter())
        guard case .done(.opened(let handle)) = both else { Issue.record("open failed"); return }
        let reader = RecordingWaiter()
        #expect(f.registry.read(handle, size: 10, offset: 0, flags: 0, waiter: reader) == .queued)
        f.registry.close()
        #expect(opener.reply == .failed(.noSuchAddressOrDevice))
        #expect(reader.reply == .data([]))
        // Closed: buffered data drains, then nothing waits.
        #expect(f.write(handle, [1]) == .done(.failed(.brokenPipe)))
        #expect(f.registry.read(handle, size: 10, offset: 0, flags: 0, waiter: RecordingWaiter()) == .done(.data([])))
        #expect(f.openWaiting(F.readWrite).1 == .done(.failed(.noSuchAddressOrDevice)))
    }

    /// Issue 12, item 15: a detached mount (lazy unmount) fails waiting and later opens
    /// ENXIO, and leaves the pipes already open working.
    @Test func detachingFailsWaitingOpensAndKeepsOpenPipes() throws {
        let f = try F()
        let (opener, _) = f.openWaiting(F.write)
        let other = f.registry.lookup(try PipeName("Q"))
        guard case .done(.opened(let handle)) = f.registry.open(other, flags: F.readWrite, caller: .alice, waiter: RecordingWaiter()) else {
            Issue.record("open failed"); return
        }
        let reader = RecordingWaiter()
        #expect(f.registry.read(handle, size: 10, offset: 0, flags: 0, waiter: reader) == .queued)
        f.registry.detach()
        #expect(opener.reply == .failed(.noSuchAddressOrDevice))
        #expect(reader.reply == nil, "a waiting read still waits for its writer")
        #expect(f.write(handle, [1, 2]) == .done(.written(2)))
        #expect(reader.reply == .data([1, 2]))
        #expect(f.openWaiting(F.readWrite).1 == .done(.failed(.noSuchAddressOrDevice)))
        #expect(f.status == nil, "the pipe the failed open created is gone")
        #expect(f.registry.isConsistent)
        f.registry.release(handle)
        #expect(f.registry.openCount == 0)
    }

    @Test func opensAbandonedAtShutdownNoLongerCount() throws {
        let f = try F()
        _ = try f.open(F.read | F.nonblocking)
        let (waiting, _) = f.openWaiting(F.read)
        #expect(f.status?.readers == 2)
        f.registry.close()
        #expect(waiting.reply == .failed(.noSuchAddressOrDevice))
        #expect(f.status?.readers == 1, "only the open that completed is left")
    }
}

extension ReadResult {
    var isData: Bool { if case .done(.data) = self { true } else { false } }
}
