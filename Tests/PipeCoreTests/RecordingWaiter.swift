import PipeCore
import Synchronization

/// A waiter that records the replies it gets, for tests of the core's decisions.
final class RecordingWaiter: PipeWaiter {
    private let state = Mutex<(replies: [PipeReply], interrupted: Bool)>(([], false))

    var isInterrupted: Bool { state.withLock { $0.interrupted } }
    func markInterrupted() { state.withLock { $0.interrupted = true } }

    func resume(_ reply: PipeReply) { state.withLock { $0.replies.append(reply) } }

    var replies: [PipeReply] { state.withLock { $0.replies } }
    /// The one reply, or nil while still waiting.
    var reply: PipeReply? {
        let all = replies
        precondition(all.count <= 1, "a waiter was resumed more than once: \(all)")
        return all.first
    }
}

final class RecordingNotifier: PollNotifier {
    private let count = Mutex(0)
    func notify() { count.withLock { $0 += 1 } }
    var notifications: Int { count.withLock { $0 } }
}

/// A registry with one looked-up name, and shorthands for the calls tests make.
struct Fixture {
    let registry: PipeRegistry
    let inode: InodeNumber

    init(capacity: Int = 65_536, mode: PipeConfig.Mode = .fifo, overflow: PipeConfig.Overflow = .drop,
         framing: PipeConfig.Framing = .stream, ignoreCase: Bool = false) throws {
        let config = try PipeConfig(capacity: capacity, mode: mode, overflow: overflow, framing: framing)
        registry = PipeRegistry(configuration: .init(pipe: config, ignoreCase: ignoreCase))
        inode = registry.lookup(try PipeName("P"))
    }

    var pipe: any PipeEndpoint { get throws { try registry.livePipe(inode) } }
    var status: PipeStatus? { try? registry.livePipe(inode).status }
    /// The pipe is live, and it and the registry are consistent (see `PipeRegistry.isConsistent`).
    var pipeIsConsistent: Bool { get throws { _ = try pipe; return registry.isConsistent } }

    static let read: Int32 = 0, write: Int32 = 1, readWrite: Int32 = 2, nonblocking: Int32 = 0o4000

    /// Opens and expects an immediate answer; returns the handle.
    func open(_ flags: Int32) throws -> PipeHandle {
        let waiter = RecordingWaiter()
        guard case .done(.opened(let handle)) = registry.open(inode, flags: flags, caller: .alice, waiter: waiter) else {
            throw FixtureError.unexpected("open(\(flags)) did not complete at once")
        }
        return handle
    }

    func openWaiting(_ flags: Int32) -> (RecordingWaiter, OpenResult) {
        let waiter = RecordingWaiter()
        return (waiter, registry.open(inode, flags: flags, caller: .alice, waiter: waiter))
    }

    func write(_ handle: PipeHandle, _ bytes: [UInt8], flags: Int32 = 0, offset: Int64 = 0,
               waiter: RecordingWaiter? = nil) -> WriteResult {
        bytes.withUnsafeBytes { registry.write(handle, bytes: $0, offset: offset, flags: flags, waiter: waiter) }
    }

    func read(_ handle: PipeHandle, _ size: Int, flags: Int32 = 0, offset: Int64 = 0,
              waiter: RecordingWaiter? = nil) -> ReadResult {
        registry.read(handle, size: size, offset: offset, flags: flags, waiter: waiter)
    }
}

enum FixtureError: Error { case unexpected(String) }

/// Open, read and write results alike, for tests that treat them the same.
enum Outcome: Equatable {
    case done(PipeReply), mustWait, queued, answered

    init(_ result: OpenResult) {
        switch result {
        case .done(let reply): self = .done(PipeReply(reply))
        case .queued: self = .queued
        }
    }

    init(_ result: ReadResult) {
        switch result {
        case .done(let reply): self = .done(PipeReply(reply))
        case .mustWait: self = .mustWait
        case .queued: self = .queued
        case .answered: self = .answered
        }
    }

    init(_ result: WriteResult) {
        switch result {
        case .done(let reply): self = .done(PipeReply(reply))
        case .mustWait: self = .mustWait
        case .queued: self = .queued
        }
    }
}

extension Array where Element == UInt8 {
    static func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }
}

extension Caller {
    /// The callers of the tests: two users in their own groups, and root.
    static let alice = Caller(uid: 1001, gid: 1001)
    static let bob = Caller(uid: 1002, gid: 1002)
    static let root = Caller(uid: 0, gid: 0)
}

extension PipeRegistry {
    /// A local pipe's poll, answered at once: its events (nil for an unknown handle).
    func poll(_ handle: PipeHandle, notifier: (any PollNotifier)?) -> PollEvents? {
        switch poll(handle, notifier: notifier, replier: nil) {
        case .some(.events(let events)): events
        case .some(.mustAsk), .some(.queued), .none: nil
        }
    }
}
