import PipeCore
import SystemPackage
import Testing

/// Ring mode (the seed's never-waiting buffer), overflow policies, message framing and
/// live settings.
@Suite struct RingAndFramingTests {
    typealias F = Fixture

    @Test func ringModeNeverWaits() throws {
        let f = try F(mode: .ring)
        // A writer without readers opens at once, even non-blocking, and its writes report their length.
        let writer = try f.open(F.write | F.nonblocking)
        #expect(f.write(writer, Array("seed".utf8)) == .done(.written(4)))
        let reader = try f.open(F.read)
        #expect(f.read(reader, 100) == .done(.data(Array("seed".utf8))))
        // Empty: a read returns 0 at once although a writer exists.
        #expect(f.read(reader, 100, waiter: RecordingWaiter()) == .done(.data([])))
        #expect(f.registry.poll(writer, notifier: nil) == [.output, .writeNormal])
        #expect(f.registry.poll(reader, notifier: nil) == [])
    }

    @Test func dropKeepsTheOldestAndCountsTheRest() throws {
        let f = try F(mode: .ring, overflow: .drop)
        let both = try f.open(F.readWrite)
        let data = [UInt8].pattern(100 * 1024)
        #expect(f.write(both, data) == .done(.written(data.count)))
        #expect(f.status?.dropped == UInt64(data.count - 65_536))
        #expect(f.read(both, 1 << 20) == .done(.data(Array(data.prefix(65_536)))))
        #expect(try f.pipeIsConsistent)
    }

    @Test func overwriteKeepsTheNewestAndCountsTheRest() throws {
        let f = try F(mode: .ring, overflow: .overwrite)
        let both = try f.open(F.readWrite)
        let first = [UInt8].pattern(40_000, seed: 1), second = [UInt8].pattern(60_000, seed: 2)
        #expect(f.write(both, first) == .done(.written(40_000)))
        #expect(f.write(both, second) == .done(.written(60_000)))
        #expect(f.status?.dropped == 100_000 - 65_536)
        #expect(f.read(both, 1 << 20) == .done(.data(Array((first + second).suffix(65_536)))))
        #expect(try f.pipeIsConsistent)
    }

    @Test func messagesKeepTheirBoundaries() throws {
        let f = try F(framing: .message)
        let both = try f.open(F.readWrite)
        for line in ["one\n", "two\n", "three\n"] { #expect(f.write(both, Array(line.utf8)) == .done(.written(line.utf8.count))) }
        #expect(f.read(both, 1000) == .done(.data(Array("one\n".utf8))), "one message per read")
        // A small buffer gets the message in parts; the next read continues the same message.
        #expect(f.read(both, 3) == .done(.data(Array("two".utf8))))
        #expect(f.read(both, 3) == .done(.data(Array("\n".utf8))))
        #expect(f.read(both, 3) == .done(.data(Array("thr".utf8))))
        // The kernel's second request of one read(2) never starts the next message.
        _ = f.write(both, Array("four".utf8))
        #expect(f.read(both, 100, offset: 4096) == .done(.data([])))
        #expect(f.read(both, 3) == .done(.data(Array("ee\n".utf8))))
        #expect(f.read(both, 100) == .done(.data(Array("four".utf8))))
        #expect(try f.pipeIsConsistent)
    }

    @Test func messagesLargerThanThePipeAreEMSGSIZE() throws {
        let f = try F(capacity: 8192, framing: .message)
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(8193)) == .done(.failed(.messageTooLong)))
        #expect(f.write(both, .pattern(10), offset: 1 << 20) == .done(.failed(.messageTooLong)),
                "a later part of a write(2) larger than one request cannot join its message")
        #expect(f.write(both, .pattern(8192)) == .done(.written(8192)))
    }

    @Test func aFifoMessageWaitsForRoomForAllOfIt() throws {
        let f = try F(capacity: 16_384, framing: .message)
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(10_000)) == .done(.written(10_000)))
        #expect(f.write(both, .pattern(8000), flags: F.nonblocking) == .done(.failed(.resourceTemporarilyUnavailable)))
        let writer = RecordingWaiter()
        #expect(f.write(both, .pattern(8000, seed: 3), waiter: writer) == .queued)
        #expect(f.read(both, 1000).isData)
        #expect(writer.reply == nil, "7384 bytes free: the message does not go in part")
        #expect(f.read(both, 1000).isData)
        #expect(writer.reply == .written(8000))
        #expect(f.read(both, 20_000) == .done(.data(Array(Array<UInt8>.pattern(10_000).suffix(8000)))))
        #expect(f.read(both, 20_000) == .done(.data(.pattern(8000, seed: 3))), "the message arrived whole")
    }

    /// Issue 6, item 5: memory follows use. A message costs a byte or three of
    /// bookkeeping, and a large buffer read empty is freed.
    @Test func bookkeepingIsSmallAndBuffersAreFreedWhenEmpty() throws {
        let f = try F(capacity: 1 << 20, framing: .message)
        let both = try f.open(F.readWrite)
        for _ in 0..<10_000 { #expect(f.write(both, [7]) == .done(.written(1))) }
        #expect(f.write(both, .pattern(500_000)) == .done(.written(500_000)))
        let allocated = f.status?.allocated ?? 0
        #expect(allocated <= 524_288 + 16_384, "10,001 messages: 512K of bytes and 16K of lengths, not \(allocated)")
        for _ in 0..<10_000 { #expect(f.read(both, 10) == .done(.data([7]))) }
        #expect(f.read(both, 1 << 20) == .done(.data(.pattern(500_000))))
        #expect(try f.pipeIsConsistent)
        #expect(f.status?.allocated ?? 0 > 524_288, "a buffer in use is kept until it has stayed idle")
        f.registry.trimIdleBuffers()
        #expect(f.status?.allocated ?? 0 > 524_288, "written since the last trim: kept")
        f.registry.trimIdleBuffers()
        #expect(f.status?.allocated == 16_384, "idle and empty, the 512K buffer is freed; 16K of lengths are kept")
        // A buffer of the kernel's default size is kept for the next pass.
        let g = try F()
        let pipe = try g.open(F.readWrite)
        #expect(g.write(pipe, .pattern(65_536)) == .done(.written(65_536)))
        #expect(g.read(pipe, 1 << 20).isData)
        g.registry.trimIdleBuffers()
        g.registry.trimIdleBuffers()
        #expect(g.status?.allocated == 65_536)
    }

    @Test func dropAndOverwriteDiscardWholeMessages() throws {
        for overflow in [PipeConfig.Overflow.drop, .overwrite] {
            let f = try F(capacity: 8192, mode: .ring, overflow: overflow, framing: .message)
            let both = try f.open(F.readWrite)
            let a = [UInt8].pattern(3000, seed: 1), b = [UInt8].pattern(3000, seed: 2), c = [UInt8].pattern(3000, seed: 3)
            for message in [a, b, c] { #expect(f.write(both, message) == .done(.written(3000))) }
            #expect(f.status?.dropped == 3000)
            let kept = overflow == .drop ? [a, b] : [b, c]
            for message in kept { #expect(f.read(both, 10_000) == .done(.data(message))) }
            #expect(f.read(both, 10_000) == .done(.data([])))
            #expect(try f.pipeIsConsistent)
        }
    }

    @Test func growingTheCapacityLetsWaitingWritersIn() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(65_536)) == .done(.written(65_536)))
        let writer = RecordingWaiter()
        #expect(f.write(both, .pattern(50_000), waiter: writer) == .queued)
        try f.pipe.apply(.capacity(131_072))
        #expect(writer.reply == .written(50_000))
        #expect(f.status?.buffered == 115_536)
        #expect(throws: Errno.resourceBusy) { try f.pipe.apply(.capacity(65_536)) }
        #expect(throws: Errno.invalidArgument) { try f.pipe.apply(.capacity(100)) }
    }

    /// Issue 6, defects 1 and 2: a capacity below a waiting message would leave it (and
    /// everyone behind it) waiting forever, and switching to ring mode then trapped.
    @Test func aCapacityBelowAWaitingMessageIsRefusedAndRingModeTakesIt() throws {
        let f = try F(framing: .message)
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(3000)) == .done(.written(3000)))
        let writer = RecordingWaiter()
        #expect(f.write(both, .pattern(63_000, seed: 9), waiter: writer) == .queued)
        #expect(throws: Errno.resourceBusy) { try f.pipe.apply(.capacity(4096)) }
        #expect(f.status?.config.capacity == 65_536)
        try f.pipe.apply(.overflow(.overwrite))
        try f.pipe.apply(.mode(.ring))
        #expect(writer.reply == .written(63_000))
        #expect(f.status?.dropped == 3000, "the older message made room")
        #expect(try f.pipeIsConsistent)
        #expect(f.read(both, 100_000) == .done(.data(.pattern(63_000, seed: 9))))
        // Once it is gone the pipe can shrink.
        try f.pipe.apply(.capacity(4096))
    }

    @Test func aWaitingMessageThatFitsTheNewCapacityAllowsTheShrink() throws {
        let f = try F(framing: .message)
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(60_000)) == .done(.written(60_000)))
        let writer = RecordingWaiter()
        #expect(f.write(both, .pattern(8000, seed: 2), waiter: writer) == .queued)
        try f.pipe.apply(.capacity(61_440))
        #expect(writer.reply == nil)
        #expect(f.read(both, 100_000) == .done(.data(.pattern(60_000))))
        #expect(writer.reply == .written(8000))
        #expect(f.read(both, 100_000) == .done(.data(.pattern(8000, seed: 2))))
        #expect(try f.pipeIsConsistent)
    }

    @Test func switchingToRingReleasesEveryWaiter() throws {
        let f = try F()
        let (opener, _) = f.openWaiting(F.write)   // waits for a reader
        let reader = try f.open(F.read | F.nonblocking)
        guard case .opened(let writer) = opener.reply else { Issue.record("writer not opened"); return }
        let read = RecordingWaiter()
        #expect(f.read(reader, 10, waiter: read) == .queued)
        try f.pipe.apply(.mode(.ring))
        #expect(read.reply == .data([]), "a waiting read returns what is there: nothing")
        // And nothing waits from now on: a full ring drops instead.
        #expect(f.write(writer, .pattern(70_000)) == .done(.written(70_000)))
        #expect(f.status?.dropped == 70_000 - 65_536)
        // Back to fifo: writes wait again.
        try f.pipe.apply(.mode(.fifo))
        #expect(f.write(writer, [1]) == .mustWait)
    }

    @Test func switchingToRingCompletesWaitingWritesAndOpens() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        #expect(f.write(both, .pattern(65_536)) == .done(.written(65_536)))
        let writer = RecordingWaiter()
        #expect(f.write(both, .pattern(1000), waiter: writer) == .queued)
        let other = f.registry.lookup(try PipeName("Q"))
        let opener = RecordingWaiter()
        #expect(f.registry.open(other, flags: F.read, caller: .alice, waiter: opener) == .queued)
        try f.pipe.apply(.mode(.ring))
        #expect(writer.reply == .written(1000))
        #expect(f.status?.dropped == 1000)
        #expect(opener.reply == nil, "another pipe's waiter is not touched")
        try f.registry.livePipe(other).apply(.mode(.ring))
        guard case .opened = opener.reply else { Issue.record("open not released"); return }
    }

    @Test func framingChangesOnlyWhenEmpty() throws {
        let f = try F()
        let both = try f.open(F.readWrite)
        _ = f.write(both, [1, 2, 3])
        #expect(throws: Errno.resourceBusy) { try f.pipe.apply(.framing(.message)) }
        _ = f.read(both, 10)
        try f.pipe.apply(.framing(.message))
        _ = f.write(both, [1, 2, 3])
        _ = f.write(both, [4])
        #expect(f.read(both, 10) == .done(.data([1, 2, 3])))
    }

    @Test func attributesReadAndSetThroughTheRegistry() throws {
        let f = try F()
        #expect(throws: Errno.noSuchFileOrDirectory) { try f.registry.attribute(.buffered, of: f.inode, caller: .alice) }
        let both = try f.open(F.readWrite)
        _ = f.write(both, [1, 2, 3, 4, 5])
        let values = try PipeAttribute.allCases.map { ($0.rawValue, try f.registry.attribute($0, of: f.inode, caller: .alice)) }
        #expect(values.map(\.1) == ["65536", "fifo", "drop", "stream", "0", "shared", "off", "1", "1", "5", "5", "0", "0"], "\(values)")
        try f.registry.setAttribute(.capacity, to: "128K\n", of: f.inode, caller: .alice)
        #expect(try f.registry.attribute(.capacity, of: f.inode, caller: .alice) == "131072")
        #expect(throws: Errno.notPermitted) { try f.registry.setAttribute(.readers, to: "2", of: f.inode, caller: .alice) }
        #expect(throws: Errno.invalidArgument) { try f.registry.setAttribute(.mode, to: "pipe", of: f.inode, caller: .alice) }
        #expect(throws: Errno.invalidArgument) { try f.registry.setAttribute(.capacity, to: "lots", of: f.inode, caller: .alice) }
        #expect(AttributeName(Array("user.npfs.bogus".utf8), onRoot: false) == .unknown)
        #expect(AttributeName(Array("user.npfs.bytes_written".utf8), onRoot: false) == .attribute(.bytesWritten, of: .this))
    }

    /// Issue 6, defect 5: a root attribute's pipe name is bytes, never decoded lossily.
    @Test func rootAttributeNamesKeepTheirBytes() {
        let prefix = Array("user.npfs.pipe.".utf8)
        func root(_ bytes: [UInt8]) -> AttributeName { AttributeName(prefix + bytes, onRoot: true) }
        #expect(root([0xFF] + Array(".capacity".utf8)) == .attribute(.capacity, of: .named([0xFF])))
        #expect(root([0xEF, 0xBF, 0xBD] + Array(".mode".utf8)) == .attribute(.mode, of: .named([0xEF, 0xBF, 0xBD])))
        #expect(root(Array("a.b.c.framing".utf8)) == .attribute(.framing, of: .named(Array("a.b.c".utf8))))
        #expect(root(Array(".mode".utf8)) == .unknown, "an empty pipe name")
        #expect(root(Array("P.bogus".utf8)) == .unknown)
        #expect(root(Array("P.mode".utf8) + [0xFF]) == .unknown)
        for name in [root([0xFF] + Array(".peek".utf8)), root([0xFF] + Array(".capacity".utf8))] {
            #expect(AttributeName(name.bytes, onRoot: true) == name, "a name round-trips through its bytes")
        }
    }

    /// Every xattr name means one thing on the root and one on a pipe (`AttributeName`).
    @Test func attributeNamesMeanOneThingWhereTheyAreAsked() {
        func on(_ root: Bool, _ name: String) -> AttributeName { AttributeName(Array(name.utf8), onRoot: root) }
        #expect(on(true, "user.npfs.pid") == .daemonPid)
        #expect(on(false, "user.npfs.pid") == .unknown, "a pipe has no daemon pid")
        #expect(on(true, "user.npfs.usage") == .usage)
        #expect(on(true, "user.npfs.set") == .setRequest)
        #expect(on(false, "user.npfs.set") == .unknown)
        #expect(on(true, "user.npfs.status.42") == .statusPage(from: 42))
        #expect(on(true, "user.npfs.status.x") == .unknown)
        #expect(on(true, "user.npfs.capacity") == .unknown, "the root is not a pipe")
        #expect(on(false, "user.npfs.peek") == .peek(of: .this))
        #expect(on(true, "user.npfs.pipe.P.clients") == .clients(of: .named(Array("P".utf8))))
        #expect(on(false, "user.npfs.delivery") == .attribute(.delivery, of: .this))
        #expect(on(false, "user.other") == .otherUser)
        #expect(on(false, "security.selinux") == .otherNamespace)
        #expect(on(true, "system.posix_acl_access") == .otherNamespace)
        for name in [AttributeName.daemonPid, .usage, .setRequest, .statusPage(from: 7), .peek(of: .this),
                     .attribute(.openTimeout, of: .this)] {
            let onRoot = name != .peek(of: .this) && name != .attribute(.openTimeout, of: .this)
            #expect(AttributeName(name.bytes, onRoot: onRoot) == name, "\(name.text) round-trips")
            #expect(name.isOurs)
        }
    }

    @Test func ignoreCaseMatchesNamesAndKeepsTheCreatorsSpelling() throws {
        let registry = PipeRegistry(configuration: .init(pipe: try PipeConfig(), ignoreCase: true))
        let lookedUp = registry.lookup(try PipeName("Hello"))
        #expect(registry.lookup(try PipeName("HELLO")) == lookedUp)
        // The open that creates the pipe follows a lookup of "hELLo".
        #expect(registry.lookup(try PipeName("hELLo")) == lookedUp)
        _ = registry.open(lookedUp, flags: F.readWrite, caller: .alice, waiter: RecordingWaiter())
        _ = registry.lookup(try PipeName("HELLO"))
        #expect(registry.livePipes().map(\.name.description) == ["hELLo"])
        #expect(registry.lookup(try PipeName("hellO!")) != lookedUp)
    }

    /// Ring mode against a model that keeps whole arrays, over random writes and reads
    /// in every overflow and framing combination.
    @Test(arguments: 1...24)
    func ringMatchesAModel(seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        let overflow: PipeConfig.Overflow = seed % 2 == 0 ? .drop : .overwrite
        let framing: PipeConfig.Framing = (seed / 2) % 2 == 0 ? .stream : .message
        let capacity = [4096, 6000, 65_536][Int(seed % 3)]
        let f = try F(capacity: capacity, mode: .ring, overflow: overflow, framing: framing)
        let both = try f.open(F.readWrite)
        var model = RingModel(capacity: capacity, overflow: overflow, framing: framing)
        for step in 0..<300 {
            if random.next() % 2 == 0 {
                let n = 1 + Int(random.next() % UInt64(capacity + capacity / 2))
                let data = (0..<n).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                #expect(f.write(both, data) == model.write(data), "step \(step)")
            } else {
                let size = 1 + Int(random.next() % UInt64(capacity))
                #expect(f.read(both, size) == .done(.data(model.read(size))), "step \(step)")
            }
            let status = try #require(f.status)
            #expect(status.buffered == model.buffered && status.dropped == model.dropped, "step \(step)")
            #expect(try f.pipeIsConsistent, "step \(step)")
        }
    }
}

/// The obvious ring: arrays of bytes or of messages, and counters.
struct RingModel {
    let capacity: Int
    let overflow: PipeConfig.Overflow
    let framing: PipeConfig.Framing
    var bytes: [UInt8] = []
    var messages: [[UInt8]] = []
    var dropped: UInt64 = 0

    var buffered: Int { framing == .stream ? bytes.count : messages.reduce(0) { $0 + $1.count } }

    mutating func write(_ data: [UInt8]) -> WriteResult {
        switch (framing, overflow) {
        case (.stream, .drop):
            let fits = min(capacity - bytes.count, data.count)
            bytes += data.prefix(fits)
            dropped += UInt64(data.count - fits)
        case (.stream, .overwrite):
            bytes += data
            let excess = max(0, bytes.count - capacity)
            bytes.removeFirst(excess)
            dropped += UInt64(excess)
        case (.message, _) where data.count > capacity:
            return .done(.failed(.messageTooLong))
        case (.message, .drop):
            if buffered + data.count <= capacity { messages.append(data) } else { dropped += UInt64(data.count) }
        case (.message, .overwrite):
            while buffered + data.count > capacity { dropped += UInt64(messages.removeFirst().count) }
            messages.append(data)
        }
        return .done(.written(data.count))
    }

    mutating func read(_ size: Int) -> [UInt8] {
        if framing == .stream {
            let taken = Array(bytes.prefix(size))
            bytes.removeFirst(taken.count)
            return taken
        }
        guard !messages.isEmpty else { return [] }
        let taken = Array(messages[0].prefix(size))
        messages[0].removeFirst(taken.count)
        if messages[0].isEmpty { messages.removeFirst() }
        return taken
    }
}
