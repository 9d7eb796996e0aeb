import PipeCore
import SystemPackage
import Testing

/// Issue 8, item 1: broadcast delivery, every reader gets every byte written after its open.
@Suite struct BroadcastTests {
    /// A broadcast pipe and its first reader (an open makes the pipe live to be set).
    static func fixture(capacity: Int = 4096, mode: PipeConfig.Mode = .fifo,
                        framing: PipeConfig.Framing = .stream) throws -> (Fixture, PipeHandle) {
        let f = try Fixture(capacity: capacity, mode: mode, framing: framing)
        let first = try f.open(Fixture.read | Fixture.nonblocking)
        try f.registry.setAttribute(.delivery, to: "broadcast", of: f.inode, caller: .alice)
        return (f, first)
    }

    /// Random opens, closes, reads and writes (none waits) against a model: the stream
    /// written, and each reader's position in it.
    @Test(arguments: 1...30)
    func readersFollowTheStreamFromTheirOpen(seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        let f = try Fixture(capacity: 4096)
        var stream: [UInt8] = []
        var readers: [(PipeHandle, Int)] = [(try f.open(Fixture.read | Fixture.nonblocking), 0)]
        try f.registry.setAttribute(.delivery, to: "broadcast", of: f.inode, caller: .alice)
        let writer = try f.open(Fixture.write | Fixture.nonblocking)
        var next: UInt8 = 0
        for step in 0..<600 {
            switch pick(10) {
            case 0:
                readers.append((try f.open(Fixture.read | Fixture.nonblocking), stream.count))
            case 1 where readers.count > 1:
                f.registry.release(readers.remove(at: pick(readers.count)).0)
            case 2, 3, 4:
                let bytes = (0..<(1 + pick(3000))).map { _ in next &+= 1; return next }
                switch f.write(writer, bytes, flags: Fixture.nonblocking) {
                case .done(.written(let count)): stream += bytes.prefix(count); next = bytes[count - 1]
                case .done(.failed(.resourceTemporarilyUnavailable)): next = stream.last ?? 0
                case let other: Issue.record("seed \(seed) step \(step): write answered \(other)")
                }
            default:
                let index = pick(readers.count)
                let (handle, position) = readers[index]
                let size = 1 + pick(5000)
                switch f.read(handle, size, flags: Fixture.nonblocking) {
                case .done(.data(let bytes)):
                    #expect(bytes == Array(stream[position..<(position + bytes.count)]), "seed \(seed) step \(step)")
                    #expect(bytes.count == min(size, stream.count - position), "a read takes what is there")
                    readers[index].1 += bytes.count
                case .done(.failed(.resourceTemporarilyUnavailable)):
                    #expect(position == stream.count, "seed \(seed) step \(step): EAGAIN with bytes ahead")
                case let other: Issue.record("seed \(seed) step \(step): read answered \(other)")
                }
            }
            #expect(try f.pipeIsConsistent, "seed \(seed) step \(step)")
            let slowest = readers.map(\.1).min() ?? stream.count
            #expect(f.status?.buffered == stream.count - slowest, "the buffer holds what the slowest reader has not read")
        }
    }

    @Test func theSlowestReaderPacesTheWriter() throws {
        let (f, fast) = try Self.fixture()
        let slow = try f.open(Fixture.read | Fixture.nonblocking)
        let writer = try f.open(Fixture.write)
        #expect(f.write(writer, .pattern(4096)) == .done(.written(4096)))
        #expect(f.read(fast, 8192) == .done(.data(.pattern(4096))))
        let waiting = RecordingWaiter()
        #expect(f.write(writer, .pattern(100, seed: 1), waiter: waiting) == .queued, "full until the slow reader reads")
        #expect(f.read(slow, 1000) == .done(.data(Array(Array<UInt8>.pattern(4096).prefix(1000)))))
        #expect(waiting.reply == .written(100))
        #expect(f.read(fast, 8192) == .done(.data(.pattern(100, seed: 1))))
        let second = RecordingWaiter()
        #expect(f.write(writer, .pattern(4000, seed: 2), waiter: second) == .queued)
        f.registry.release(slow)
        #expect(second.reply == .written(4000), "the room a closing reader frees lets the writer in")
        #expect(f.read(fast, 8192) == .done(.data(.pattern(4000, seed: 2))))
        #expect(f.status?.buffered == 0, "a reader that closes holds nothing back")
        #expect(f.read(fast, 10, flags: Fixture.nonblocking) == .done(.failed(.resourceTemporarilyUnavailable)))
        f.registry.release(writer)
        #expect(f.read(fast, 10) == .done(.data([])), "end of file once no writer is left")
    }

    @Test func ringModeLeavesALaggingReaderItsLoss() throws {
        let (f, fast) = try Self.fixture(mode: .ring)
        try f.registry.setAttribute(.overflow, to: "overwrite", of: f.inode, caller: .alice)
        let slow = try f.open(Fixture.read | Fixture.nonblocking)
        let writer = try f.open(Fixture.write)
        for round in 0..<3 {
            #expect(f.write(writer, .pattern(3000, seed: UInt8(round))) == .done(.written(3000)))
            #expect(f.read(fast, 4096) == .done(.data(.pattern(3000, seed: UInt8(round)))))
        }
        // The slow reader is 9000 bytes behind a 4096-byte pipe: it lost the oldest 4904.
        let clients = try f.registry.clients(of: f.inode, caller: .alice)
        #expect(clients.map(\.lost) == [0, 4904, nil], "each reader its own loss; the writer none")
        #expect(f.status?.dropped == 4904 && f.status?.buffered == 4096)
        #expect(f.read(slow, 8192) == .done(.data(Array(Array<UInt8>.pattern(3000, seed: 1).suffix(1096)) + .pattern(3000, seed: 2))))
        #expect(try f.pipeIsConsistent)
    }

    @Test func everyReaderGetsWholeMessagesInOrder() throws {
        let (f, a) = try Self.fixture(capacity: 8192, framing: .message)
        let b = try f.open(Fixture.read | Fixture.nonblocking)
        let writer = try f.open(Fixture.write)
        for (index, text) in ["one", "two", "three"].enumerated() {
            #expect(f.write(writer, Array(text.utf8)) == .done(.written(text.utf8.count)), "\(index)")
        }
        for reader in [a, b] {
            #expect(f.read(reader, 100) == .done(.data(Array("one".utf8))))
            #expect(f.read(reader, 2) == .done(.data(Array("tw".utf8))), "a small buffer takes part of a message")
            #expect(f.read(reader, 100) == .done(.data(Array("o".utf8))))
            #expect(f.read(reader, 100) == .done(.data(Array("three".utf8))))
        }
        #expect(f.status?.buffered == 0)
        #expect(try f.pipeIsConsistent)
    }

    @Test func aWaitingReaderGetsTheBytesAtItsOwnPosition() throws {
        let (f, a) = try Self.fixture()
        let b = try f.open(Fixture.read | Fixture.nonblocking)
        let writer = try f.open(Fixture.write)
        let waiting = RecordingWaiter()
        #expect(f.read(a, 100, waiter: waiting) == .queued)
        #expect(f.write(writer, [1, 2, 3]) == .done(.written(3)))
        #expect(waiting.reply == .data([1, 2, 3]), "the waiting reader is answered")
        #expect(f.status?.buffered == 3, "b has not read them yet")
        #expect(f.read(b, 2) == .done(.data([1, 2])))
        #expect(f.read(b, 100) == .done(.data([3])))
        #expect(f.status?.buffered == 0)
        #expect(f.registry.poll(a, notifier: nil)?.contains(.input) == false)
        #expect(f.write(writer, [4]) == .done(.written(1)))
        #expect(f.registry.poll(a, notifier: nil)?.contains(.input) == true, "POLLIN by the reader's own position")
        #expect(f.read(a, 10) == .done(.data([4])))
        #expect(f.registry.poll(a, notifier: nil)?.contains(.input) == false)
        #expect(f.registry.poll(b, notifier: nil)?.contains(.input) == true)
    }

    @Test func deliveryChangesOnlyWhileEmpty() throws {
        let f = try Fixture()
        let both = try f.open(Fixture.readWrite)
        _ = f.write(both, [1])
        #expect(throws: Errno.resourceBusy) { try f.registry.setAttribute(.delivery, to: "broadcast", of: f.inode, caller: .alice) }
        _ = f.read(both, 10)
        try f.registry.setAttribute(.delivery, to: "broadcast", of: f.inode, caller: .alice)
        #expect(try f.registry.attribute(.delivery, of: f.inode, caller: .alice) == "broadcast")
        #expect(f.write(both, [2]) == .done(.written(1)))
        #expect(f.read(both, 10) == .done(.data([2])), "an open from before the change reads too")
        #expect(throws: Errno.invalidArgument) { try f.registry.setAttribute(.delivery, to: "everyone", of: f.inode, caller: .alice) }
    }
}
