import PipeCore
import SystemPackage
import Testing

/// Issue 12, items 8 to 11: what broadcast delivery counts as read, dropped and lost, how
/// `overflow=drop` acts, what peek shows, and that a refused open leaves no reader behind.
@Suite struct BroadcastCountsTests {
    typealias F = Fixture

    /// Bytes written while no reader is open are dropped at once: no reader can ever get them.
    @Test func bytesWrittenBeforeAnyReaderAreDropped() throws {
        let (f, first) = try BroadcastTests.fixture(mode: .ring)
        let writer = try f.open(F.write | F.nonblocking)
        f.registry.release(first)
        #expect(f.write(writer, .pattern(100)) == .done(.written(100)))
        let reader = try f.open(F.read | F.nonblocking)
        #expect(f.write(writer, .pattern(10, seed: 7)) == .done(.written(10)))
        #expect(f.read(reader, 4096) == .done(.data(.pattern(10, seed: 7))))
        let status = try #require(f.status)
        #expect((status.bytesWritten, status.bytesRead, status.dropped, status.buffered) == (110, 10, 100, 0), "\(status)")
        #expect(f.registry.isConsistent)
    }

    /// Bytes a closing reader never read leave the buffer as read only where another
    /// reader (open or gone) read them.
    @Test func bytesNoReaderReadAreDroppedWhenTheyLeave() throws {
        let (f, slow) = try BroadcastTests.fixture()
        let early = try f.open(F.read | F.nonblocking)
        let writer = try f.open(F.write)
        #expect(f.write(writer, .pattern(100)) == .done(.written(100)))
        #expect(f.read(early, 50) == .done(.data(Array(Array<UInt8>.pattern(100).prefix(50)))))
        f.registry.release(early)
        let late = try f.open(F.read | F.nonblocking)
        #expect(f.write(writer, .pattern(10, seed: 3)) == .done(.written(10)))
        #expect(f.read(late, 4096) == .done(.data(.pattern(10, seed: 3))))
        #expect(f.status?.bytesRead == 0 && f.status?.buffered == 110, "the slow reader holds everything")
        f.registry.release(slow)
        // 0..<50 read by the reader that left, 50..<100 by nobody, 100..<110 by the late one.
        let status = try #require(f.status)
        #expect((status.bytesRead, status.dropped, status.buffered) == (60, 50, 0), "\(status)")
        #expect(f.registry.isConsistent)
    }

    /// One stream write larger than the pipe loses its head for every reader, counted for each.
    @Test func anOversizedWriteIsLostByEveryReader() throws {
        let (f, a) = try BroadcastTests.fixture(mode: .ring)
        try f.registry.setAttribute(.overflow, to: "overwrite", of: f.inode, caller: .alice)
        let b = try f.open(F.read | F.nonblocking)
        let writer = try f.open(F.write)
        #expect(f.write(writer, .pattern(8192)) == .done(.written(8192)))
        let clients = try f.registry.clients(of: f.inode, caller: .alice)
        #expect(clients.map(\.lost) == [4096, 4096, nil], "each reader lost the head")
        #expect(f.status?.dropped == 4096)
        for reader in [a, b] { #expect(f.read(reader, 8192) == .done(.data(Array(Array<UInt8>.pattern(8192).suffix(4096))))) }
        #expect(f.registry.isConsistent)
    }

    /// `overflow=drop` keeps the oldest bytes in broadcast delivery too: the new ones that do
    /// not fit are discarded, and lost by every reader.
    @Test(arguments: [PipeConfig.Framing.stream, .message])
    func overflowDropKeepsTheOldest(framing: PipeConfig.Framing) throws {
        let (f, reader) = try BroadcastTests.fixture(mode: .ring, framing: framing)
        let writer = try f.open(F.write)
        #expect(f.write(writer, .pattern(3000)) == .done(.written(3000)))
        #expect(f.write(writer, .pattern(3000, seed: 1)) == .done(.written(3000)))
        let kept: [UInt8] = framing == .stream ? .pattern(3000) + Array<UInt8>.pattern(3000, seed: 1).prefix(1096) : .pattern(3000)
        let lost = 6000 - kept.count
        #expect(f.status?.dropped == UInt64(lost))
        #expect(try f.registry.clients(of: f.inode, caller: .alice).map(\.lost) == [UInt64(lost), nil])
        var got: [UInt8] = []
        while case .done(.data(let bytes)) = f.read(reader, 8192, flags: F.nonblocking), !bytes.isEmpty { got += bytes }
        #expect(got == kept)
        #expect(f.registry.isConsistent)
    }

    /// Peek shows what the reader's own next read returns; without a reader, the newest's.
    @Test func peekIsByTheReadersOwnPosition() throws {
        let (f, a) = try BroadcastTests.fixture()
        let writer = try f.open(F.write)
        #expect(f.write(writer, [1, 2, 3]) == .done(.written(3)))
        let b = try f.open(F.read | F.nonblocking)
        #expect(f.write(writer, [4]) == .done(.written(1)))
        #expect(f.read(a, 2) == .done(.data([1, 2])))
        let pipe = try f.pipe
        #expect(pipe.peek(100, reader: a) == [3, 4])
        #expect(pipe.peek(100, reader: b) == [4])
        #expect(pipe.peek(1, reader: a) == [3])
        #expect(pipe.peek(100, reader: nil) == [4], "no read end: the newest reader's position")
        #expect(f.status?.buffered == 2, "peek takes nothing")
    }

    /// An open refused before it would wait (interrupted already) leaves no reader: with
    /// broadcast delivery its cursor would pin the buffer and every writer would wait for ever.
    @Test func anInterruptedOpenLeavesNoPhantomReader() throws {
        let (f, reader) = try BroadcastTests.fixture()
        let interrupted = RecordingWaiter()
        interrupted.markInterrupted()
        #expect(f.registry.open(f.inode, flags: F.read, caller: .alice, waiter: interrupted) == .done(.failed(.interrupted)))
        #expect(f.status?.readers == 1)
        #expect(f.registry.isConsistent)
        let writer = try f.open(F.write)
        #expect(f.write(writer, .pattern(4096)) == .done(.written(4096)))
        #expect(f.read(reader, 8192) == .done(.data(.pattern(4096))))
        #expect(f.status?.buffered == 0, "nothing pins the buffer")
        let next = RecordingWaiter()
        #expect(f.write(writer, .pattern(100), waiter: next) == .done(.written(100)), "a writer finds room")
        // A write-only open refused (ENXIO) leaves nothing either.
        f.registry.release(reader)
        #expect(f.registry.open(f.inode, flags: F.write | F.nonblocking, caller: .alice, waiter: RecordingWaiter())
            == .done(.failed(.noSuchAddressOrDevice)))
        #expect(f.registry.isConsistent)
    }
}
