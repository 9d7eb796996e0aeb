import PipeCore
import Synchronization
import SystemPackage
import Testing

/// Seeded random sequences of opens, reads, writes, closes, settings, polls and interrupts
/// against the core, checked against a simple model of what a pipe promises; and the
/// parsers of names, options and attribute values fed hostile input. Nothing may trap.
@Suite struct FuzzTests {
    typealias F = Fixture

    /// Every reply in the order the core gave it, immediate or deferred.
    final class ReplyLog: Sendable {
        private let entries = Mutex<[(request: Int, reply: PipeReply)]>([])
        func add(_ request: Int, _ reply: PipeReply) { entries.withLock { $0.append((request, reply)) } }
        var all: [(request: Int, reply: PipeReply)] { entries.withLock { $0 } }
    }

    /// A waiter that logs its reply, and may be answered only once.
    final class LoggingWaiter: PipeWaiter {
        let request: Int
        let log: ReplyLog
        private let state = Mutex<(replies: Int, last: PipeReply?, interrupted: Bool)>((0, nil, false))
        init(_ request: Int, _ log: ReplyLog) { self.request = request; self.log = log }
        var isInterrupted: Bool { state.withLock { $0.interrupted } }
        func markInterrupted() { state.withLock { $0.interrupted = true } }
        var replies: Int { state.withLock { $0.replies } }
        var reply: PipeReply? { state.withLock { $0.last } }
        func resume(_ reply: PipeReply) {
            state.withLock { ($0.replies, $0.last) = ($0.replies + 1, reply) }
            log.add(request, reply)
        }
    }

    enum Request { case open, read(framed: Bool, handle: PipeHandle), write(id: UInt8, size: Int, atomic: Bool) }

    @Test(arguments: 1...40)
    func randomRequestsKeepEveryPromise(seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        let limits = MountLimits(maxPipes: 4, maxMemory: 4 << 20, userMaxMemory: 4 << 20, maxCapacity: 1 << 20)
        var config = try PipeConfig(capacity: [4096, 8192, 65_536][pick(3)], framing: pick(4) == 0 ? .message : .stream)
        // Half the seeds may switch to broadcast delivery (and back), some start with it.
        let broadcasting = seed % 2 == 0
        if broadcasting && pick(3) == 0 { config.delivery = .broadcast }
        let registry = PipeRegistry(configuration: .init(pipe: config, limits: limits))
        let inode = registry.lookup(try PipeName("F"))
        let log = ReplyLog()
        var requests: [Request] = []
        var waiters: [LoggingWaiter] = []
        var handles: [(PipeHandle, AccessMode)] = []
        var openWaiters: [LoggingWaiter] = []
        var nextID: UInt8 = 1

        /// Offers a request as the adapter does: first without a waiter, then with one.
        func offer(_ request: Request, blocking: Bool, _ operation: ((any PipeWaiter)?) -> Outcome) {
            let number = requests.count
            requests.append(request)
            let waiter = LoggingWaiter(number, log)
            switch operation(nil) {
            case .done(let reply): log.add(number, reply)
            case .answered: Issue.record("the copying read answers .done")
            case .mustWait, .queued:
                #expect(blocking, "a non-blocking request must not wait")
                if case .done(let reply) = operation(waiter) { log.add(number, reply) } else { waiters.append(waiter) }
            }
        }

        for step in 0..<500 {
            // Opens that completed since join the handles.
            for (index, waiter) in openWaiters.enumerated().reversed() where waiter.replies > 0 {
                if case .opened(let handle)? = waiter.reply { handles.append((handle, .read)) }
                openWaiters.remove(at: index)
            }
            let framed = (try? registry.livePipe(inode).status.config.framing) == .message
            switch pick(12) {
            case 0, 1:
                let flags = Int32(pick(3)) | (pick(2) == 0 ? F.nonblocking : 0)
                let number = requests.count
                requests.append(.open)
                let waiter = LoggingWaiter(number, log)
                // Interrupted before it could register for interrupts: refused, it leaves no trace.
                if pick(4) == 0 { waiter.markInterrupted() }
                switch registry.open(inode, flags: flags, caller: .alice, waiter: waiter) {
                case .done(.opened(let handle)): handles.append((handle, AccessMode(openFlags: flags) ?? .read))
                case .done(let reply): log.add(number, PipeReply(reply))
                case .queued: waiters.append(waiter); openWaiters.append(waiter)
                }
            case 2:
                if !handles.isEmpty { registry.release(handles.remove(at: pick(handles.count)).0) }
            case 3, 4, 5:
                guard !handles.isEmpty, nextID < 255 else { continue }
                let (handle, _) = handles[pick(handles.count)]
                let size = pick(3) == 0 ? 1 + pick(20_000) : 1 + pick(4096)
                let id = nextID
                nextID += 1
                let bytes = [UInt8](repeating: id, count: size)
                let nonblocking = pick(3) == 0
                offer(.write(id: id, size: size, atomic: framed || size <= PipeConfig.atomicWriteLimit), blocking: !nonblocking) { waiter in
                    Outcome(bytes.withUnsafeBytes { registry.write(handle, bytes: $0, offset: 0, flags: nonblocking ? F.nonblocking : 0, waiter: waiter) })
                }
            case 6, 7, 8:
                guard !handles.isEmpty else { continue }
                let (handle, _) = handles[pick(handles.count)]
                let size = [1, 3, 100, 4096, 70_000][pick(5)]
                let nonblocking = pick(3) == 0
                offer(.read(framed: framed, handle: handle), blocking: !nonblocking) { waiter in
                    Outcome(registry.read(handle, size: size, offset: 0, flags: nonblocking ? F.nonblocking : 0, waiter: waiter))
                }
            case 9:
                let waiting = waiters.filter { $0.replies == 0 }
                if let waiter = waiting.randomElement(using: &random) {
                    if pick(2) == 0 {
                        waiter.markInterrupted()
                        registry.interrupt(waiter, inode: inode)
                    } else {
                        registry.expire(waiter, inode: inode)   // an open's timeout; nothing for a read or write
                    }
                }
            case 10:
                let settings: [(PipeAttribute, String)] = [(.capacity, "4K"), (.capacity, "8K"), (.capacity, "64K"), (.capacity, "1M"),
                                                           (.mode, "fifo"), (.mode, "ring"), (.overflow, "drop"), (.overflow, "overwrite"),
                                                           (.framing, "stream"), (.framing, "message"), (.openTimeout, "0.5")]
                    + (broadcasting ? [(.delivery, "broadcast"), (.delivery, "shared")] : [])
                let (attribute, value) = settings[pick(settings.count)]
                try? registry.setAttribute(attribute, to: value, of: inode, caller: .alice)
            default:
                if let (handle, _) = handles.randomElement(using: &random) { _ = registry.poll(handle, notifier: nil) }
                _ = try? registry.peek(inode, max: pick(5000), caller: .alice, process: pick(2) == 0 ? 0 : nil)
            }
            #expect(registry.isConsistent, "seed \(seed) step \(step)")
            if waiters.contains(where: { $0.replies > 1 }) { Issue.record("a request answered twice (seed \(seed) step \(step))") }
        }

        // The end: shutdown answers whatever waits, then every open is released.
        registry.close()
        for (handle, _) in handles { registry.release(handle) }
        #expect(waiters.allSatisfy { $0.replies == 1 }, "every request answered exactly once (seed \(seed))")
        #expect(registry.livePipes().isEmpty && registry.usage.pipes == 0 && registry.usage.waitingBytes == 0)

        // (The counters of each incarnation of the pipe add up: `isConsistent` above.)
        // What the core promised: every byte read was written, none twice (with shared
        // delivery; with broadcast, none twice to one reader), each write of at most PIPE_BUF
        // (and each message) in one piece, each message read alone.
        var taken = [Int](repeating: 0, count: 256)
        var streams: [PipeHandle: [UInt8]] = [:]
        var stream: [UInt8] = []
        for (number, reply) in log.all {
            switch (requests[number], reply) {
            case (.write(let id, let size, _), .written(let count)):
                #expect(count <= size)
                taken[Int(id)] += count
            case (.read(let framed, let handle), .data(let bytes)):
                if framed { #expect(Set(bytes).count <= 1, "a message read holds one message (seed \(seed))") }
                streams[handle, default: []] += bytes
                stream += bytes
            default: break
            }
        }
        for received in broadcasting ? Array(streams.values) : [stream] {
            var read = [Int](repeating: 0, count: 256)
            for byte in received { read[Int(byte)] += 1 }
            for id in 1..<256 { #expect(read[id] <= taken[id], "write \(id): \(read[id]) bytes read, \(taken[id]) taken (seed \(seed))") }
            for number in requests.indices {
                guard case .write(let id, _, true) = requests[number], read[Int(id)] > 0,
                      let first = received.firstIndex(of: id), let last = received.lastIndex(of: id) else { continue }
                #expect(last - first + 1 == read[Int(id)], "write \(id) of at most PIPE_BUF was interleaved (seed \(seed))")
            }
        }
    }

    /// Hostile input to every parser a client's bytes reach: names, attribute names and
    /// values, `npfs set` requests and sizes (mount options: `MountOptionsTests`). Each answers or throws.
    @Test func parsersTakeHostileInput() {
        var random = SplitMix(seed: 42)
        let alphabet = Array("0123456789KMGkmgiB.=,/\\-_ \u{0}\nuser.npfs.pipe.capacitymodeframing".utf8) + [0xFF, 0xC3, 0x80]
        func hostile(_ length: Int) -> [UInt8] {
            (0..<length).map { _ in random.next() % 3 == 0 ? UInt8(truncatingIfNeeded: random.next()) : alphabet[Int(random.next() % UInt64(alphabet.count))] }
        }
        for _ in 0..<20_000 {
            let bytes = hostile(Int(random.next() % 300))
            if let name = try? PipeName(bytes: bytes) {
                #expect(!name.bytes.isEmpty && name.bytes.count <= 255 && !name.bytes.contains(0) && !name.bytes.contains(0x2F))
            }
            for onRoot in [false, true] {
                let name = AttributeName(bytes, onRoot: onRoot)
                if case .attribute(_, .named(let pipe)) = name { #expect(!pipe.isEmpty) }
                if name.isOurs { #expect(AttributeName(name.bytes, onRoot: onRoot) == name, "a name round-trips") }
            }
            if let (pipe, changes) = try? PipeAttribute.parseSetRequest(bytes) {
                #expect(PipeAttribute.setRequest(pipe: pipe, changes: changes) == bytes, "a set request round-trips")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if let size = PipeConfig.parseSize(text) { #expect(size >= 0) }
            for attribute in PipeAttribute.allCases {
                if case .capacity(let capacity)? = try? attribute.setting(from: text) { #expect(PipeConfig.validCapacities.contains(capacity)) }
            }
        }
        #expect(PipeConfig.parseSize(String(repeating: "9", count: 40) + "G") == nil)
        #expect(PipeConfig.parseSize("9223372036854775807G") == nil)
    }
}
