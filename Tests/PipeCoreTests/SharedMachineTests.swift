@testable import PipeCore
import SystemPackage
import Testing

/// The machine as the cluster executor runs it: decoded from bytes before every step and
/// encoded after. Run in lockstep with one that stays in memory, it must decide the same:
/// a field the encoding left out would make the two part.
@Suite struct SharedMachineTests {
    static let budget = ByteBudget(limit: 1 << 30)

    struct Walk {
        var random: SplitMix
        var opens: [(OpenID, AccessMode)] = []
        var nextHandle: UInt64 = 1
        var nextWait: UInt64 = 1
        var waiting: [WaitID: (OpenID, AccessMode)?] = [:]
        var log: [String] = []

        mutating func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }

        /// Settings drawn at random: every mode, framing and delivery.
        mutating func config() -> PipeConfig {
            var config = PipeConfig.defaults
            config.capacity = [4096, 8192, 65536][pick(3)]
            config.mode = pick(4) == 0 ? .ring : .fifo
            config.framing = pick(2) == 0 ? .message : .stream
            config.delivery = pick(3) == 0 ? .broadcast : .shared
            return config
        }
    }

    /// One request, applied to a machine; what it answered and caused, as text.
    enum Request {
        case open(OpenID, AccessMode, nonblocking: Bool, WaitID)
        case close(OpenID, AccessMode)
        case read(OpenID, Int, nonblocking: Bool, WaitID?)
        case write(OpenID, [UInt8], nonblocking: Bool, WaitID?)
        case cancel(WaitID, Withdrawal)
        case apply(PipeSetting)
        case leave(HostID, [(OpenID, AccessMode)])

        func run<Buffer: StoredBuffer & ~Copyable>(on machine: inout SharedMachine<Buffer>, at now: Timestamp) -> (String, SharedEffects) {
            let caller = Caller(uid: 0, gid: 0, pid: 1)
            switch self {
            case .open(let open, let access, let nonblocking, let wait):
                let (answer, effects) = machine.open(open, access: access, nonblocking: nonblocking, caller: caller, protection: .off,
                                                     mountOwner: 0, wait: WaitOffer(wait, interrupted: false), at: now)
                return ("\(answer)", effects)
            case .close(let open, let access):
                return ("closed", machine.close(open, access: access, at: now))
            case .read(let open, let size, let nonblocking, let wait):
                let (reply, attempt, effects) = machine.read(open, size: size, nonblocking: nonblocking,
                                                             wait: wait.map { WaitOffer($0, interrupted: false) }, at: now)
                return ("\(String(describing: reply)) \(attempt)", effects)
            case .write(let open, let bytes, let nonblocking, let wait):
                let (attempt, effects) = machine.write(open, bytes, nonblocking: nonblocking,
                                                       wait: wait.map { WaitOffer($0, interrupted: false) }, at: now)
                return ("\(attempt)", effects)
            case .cancel(let wait, let reason):
                let (cancelled, effects) = machine.cancel(wait, because: reason, at: now)
                return ("\(String(describing: cancelled))", effects)
            case .apply(let setting):
                let (error, effects) = machine.apply(setting, at: now)
                return ("\(String(describing: error))", effects)
            case .leave(let host, let opens):
                return ("left", machine.leave(host, opens: opens, at: now))
            }
        }
    }

    static func describe(_ effects: SharedEffects) -> String {
        effects.replies.map { "\($0.wait.host.rawValue)/\($0.wait.number)=\($0.reply)" }.joined(separator: ",") + " \(effects.readinessChanged)"
    }

    /// Pages as the cluster keeps them: appended bytes added to their pages, pages below the
    /// head dropped.
    final class FakePages: PageSource, @unchecked Sendable {
        var stored: [Int64: [UInt8]] = [:]
        var reads = 0

        func pages(_ first: Int64, _ last: Int64) -> [Int64: [UInt8]] {
            reads += 1
            return stored.filter { (first...last).contains($0.key) }
        }

        func apply(_ changes: (start: UInt64, appended: [UInt8], firstLivePage: Int64)) {
            var position = changes.start, offset = 0
            while offset < changes.appended.count {
                let room = PagedBuffer.pageSize - Int(position % UInt64(PagedBuffer.pageSize))
                let piece = changes.appended[offset..<min(changes.appended.count, offset + room)]
                stored[PagedBuffer.page(of: position), default: []] += piece
                offset += piece.count
                position += UInt64(piece.count)
            }
            stored = stored.filter { $0.key >= changes.firstLivePage }
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func bytesKeptInPagesElsewhereDecideAsBytesInARing(seed: UInt64) throws {
        var walk = Walk(random: SplitMix(seed: seed &+ 100))
        let config = walk.config()
        let ownership = Ownership(uid: 0, gid: 0, permissions: 0o666)
        var ring = SharedMachine<ByteRing>(config: config, ownership: ownership, at: Timestamp(seconds: 1, nanoseconds: 0), budget: Self.budget)
        let pages = FakePages()
        var stored = SharedMachine<PagedBuffer>(config: config, ownership: ownership, at: Timestamp(seconds: 1, nanoseconds: 0),
                                                budget: Self.budget).encoded
        for index in 0..<500 {
            let now = Timestamp(seconds: 2 + index, nanoseconds: index)
            let request = next(&walk)
            var paged = try SharedMachine<PagedBuffer>(decoding: stored, budget: Self.budget, source: pages)
            let (fromRing, ringEffects) = request.run(on: &ring, at: now)
            let (fromPages, pagedEffects) = request.run(on: &paged, at: now)
            pages.apply(paged.pageChanges)
            stored = paged.encoded
            // The same figures (memory aside: a paged buffer holds none), and the same bytes buffered.
            var (pagedStatus, ringStatus) = (paged.status, ring.status)
            (pagedStatus.allocated, ringStatus.allocated) = (0, 0)
            guard fromRing == fromPages, Self.describe(ringEffects) == Self.describe(pagedEffects), paged.isConsistent,
                  pagedStatus == ringStatus, paged.peek(1 << 20, reader: nil) == ring.peek(1 << 20, reader: nil) else {
                Issue.record("""
                    step \(index), \(String(describing: request).prefix(300)): \(fromRing) vs \(fromPages), \
                    \(Self.describe(ringEffects).prefix(300)) vs \(Self.describe(pagedEffects).prefix(300)), consistent: \(paged.isConsistent)
                    """)
                return
            }
            track(request, fromRing, ringEffects, &walk)
        }
        #expect(pages.stored.count <= 65536 / PagedBuffer.pageSize + 2, "pages below the head are dropped")
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func aMachineDecodedBeforeEveryStepDecidesAsOneKeptInMemory(seed: UInt64) throws {
        var walk = Walk(random: SplitMix(seed: seed))
        let config = walk.config()
        let ownership = Ownership(uid: 0, gid: 0, permissions: 0o666)
        var kept = SharedMachine<ByteRing>(config: config, ownership: ownership, at: Timestamp(seconds: 1, nanoseconds: 0), budget: Self.budget)
        var stored = kept.encoded
        for index in 0..<500 {
            let now = Timestamp(seconds: 2 + index, nanoseconds: index)
            let request = next(&walk)
            var decoded = try SharedMachine<ByteRing>(decoding: stored, budget: Self.budget)
            if decoded.encoded != stored { Issue.record("re-encoding changed the bytes at step \(index)"); return }
            let (inMemory, keptEffects) = request.run(on: &kept, at: now)
            let (fromBytes, decodedEffects) = request.run(on: &decoded, at: now)
            stored = decoded.encoded
            let inMemoryBytes = kept.encoded
            guard inMemory == fromBytes, Self.describe(keptEffects) == Self.describe(decodedEffects), stored == inMemoryBytes,
                  decoded.isConsistent else {
                let part = stored.indices.first { $0 >= inMemoryBytes.count || stored[$0] != inMemoryBytes[$0] }
                Issue.record("""
                    step \(index), \(String(describing: request).prefix(300)): \(inMemory) vs \(fromBytes), \
                    \(Self.describe(keptEffects).prefix(300)) vs \(Self.describe(decodedEffects).prefix(300)), \
                    encodings part at byte \(String(describing: part)), consistent: \(decoded.isConsistent)
                    """)
                return
            }
            track(request, inMemory, keptEffects, &walk)
        }
    }

    @Test func damagedStateIsRefusedNotTrapped() throws {
        var config = PipeConfig.defaults
        config.framing = .message
        var machine = SharedMachine<ByteRing>(config: config, ownership: Ownership(uid: 1, gid: 2, permissions: 0o640),
                                    at: Timestamp(seconds: 1, nanoseconds: 0), budget: Self.budget)
        let now = Timestamp(seconds: 2, nanoseconds: 0)
        let writer = OpenID(host: HostID(rawValue: 3), handle: PipeHandle(rawValue: 4))
        _ = machine.open(writer, access: .readWrite, nonblocking: false, caller: Caller(uid: 0, gid: 0, pid: 1), protection: .off,
                         mountOwner: 0, wait: WaitOffer(WaitID(number: 1), interrupted: false), at: now)
        _ = machine.write(writer, Array(repeating: 7, count: 100), nonblocking: false, wait: nil, at: now)
        let bytes = machine.encoded
        for length in 0..<bytes.count {
            #expect(throws: StateDecodingError.self) { try SharedMachine<ByteRing>(decoding: Array(bytes[..<length]), budget: Self.budget) }
        }
        #expect(throws: StateDecodingError.self) { try SharedMachine<ByteRing>(decoding: bytes + [0], budget: Self.budget) }
        var random = SplitMix(seed: 99)
        for _ in 0..<2000 {
            var damaged = bytes
            damaged[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            _ = try? SharedMachine<ByteRing>(decoding: damaged, budget: Self.budget)
        }
    }

    // MARK: The walk

    private func next(_ walk: inout Walk) -> Request {
        let completed = walk.opens
        let host = HostID(rawValue: UInt32(1 + walk.pick(2)))
        switch walk.pick(20) {
        case 0..<3:
            let access: AccessMode = [.read, .write, .readWrite][walk.pick(3)]
            let open = OpenID(host: host, handle: PipeHandle(rawValue: walk.nextHandle))
            walk.nextHandle += 1
            return .open(open, access, nonblocking: walk.pick(4) == 0, newWait(&walk, host))
        case 3 where !completed.isEmpty:
            let (open, access) = completed[walk.pick(completed.count)]
            return .close(open, access)
        case 4..<9:
            guard let (open, _) = completed.filter({ $0.1.reads }).randomElement(using: &walk.random) else { return .apply(.openTimeout(1)) }
            let blocking = walk.pick(3) != 0
            return .read(open, [1, 10, 100, 4096, 70000][walk.pick(5)], nonblocking: !blocking, blocking ? newWait(&walk, open.host) : nil)
        case 9..<15:
            guard let (open, _) = completed.filter({ $0.1.writes }).randomElement(using: &walk.random) else { return .apply(.openTimeout(2)) }
            let blocking = walk.pick(3) != 0
            let size = [1, 10, 100, 4096, 5000, walk.pick(8) == 0 ? 70000 : 300][walk.pick(6)]
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ Int(walk.nextWait)) }
            return .write(open, bytes, nonblocking: !blocking, blocking ? newWait(&walk, open.host) : nil)
        case 15 where !walk.waiting.isEmpty:
            let wait = Array(walk.waiting.keys)[walk.pick(walk.waiting.count)]
            return .cancel(wait, walk.pick(2) == 0 ? .interrupted : .timedOut)
        case 16:
            let settings: [PipeSetting] = [.capacity([4096, 16384, 65536][walk.pick(3)]), .mode(walk.pick(2) == 0 ? .ring : .fifo),
                                           .overflow(walk.pick(2) == 0 ? .drop : .overwrite), .framing(walk.pick(2) == 0 ? .message : .stream),
                                           .delivery(walk.pick(2) == 0 ? .broadcast : .shared), .persist(walk.pick(2) == 0)]
            return .apply(settings[walk.pick(settings.count)])
        case 17 where walk.pick(10) == 0:
            return .leave(host, completed.filter { $0.0.host == host })
        default:
            return .apply(.openTimeout(Double(walk.pick(5))))
        }
    }

    private func newWait(_ walk: inout Walk, _ host: HostID) -> WaitID {
        defer { walk.nextWait += 1 }
        return WaitID(host: host, number: walk.nextWait)
    }

    /// Keeps the walk's idea of completed opens and waits up to date.
    private func track(_ request: Request, _ answer: String, _ effects: SharedEffects, _ walk: inout Walk) {
        switch request {
        case .open(let open, let access, _, let wait):
            if answer.contains("queued") { walk.waiting[wait] = (open, access) } else if answer.contains("opened") { walk.opens.append((open, access)) }
        case .close(let open, _):
            walk.opens.removeAll { $0.0 == open }
        case .read(_, _, _, let wait?), .write(_, _, _, let wait?):
            if answer.contains("queued") { walk.waiting[wait] = .some(nil) }
        case .cancel(let wait, _):
            if answer.contains("open") { walk.waiting[wait] = nil }
        case .leave(let host, _):
            walk.opens.removeAll { $0.0.host == host }
            walk.waiting = walk.waiting.filter { $0.key.host != host }
        default:
            break
        }
        for (wait, reply) in effects.replies {
            guard let entry = walk.waiting.removeValue(forKey: wait) else { continue }
            if case .opened = reply, let (open, access) = entry { walk.opens.append((open, access)) }
        }
    }
}
