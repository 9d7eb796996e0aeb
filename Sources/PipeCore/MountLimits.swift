import Synchronization
import SystemPackage

/// The mount's limits, in the spirit of the kernel's own accounting of pipe buffers
/// (`fs.pipe-max-size`, `fs.pipe-user-pages-*`, `fs.file-max`): one client cannot grow the
/// daemon until the OOM killer ends the mount for everyone.
public struct MountLimits: Sendable, Equatable {
    /// Live pipes at once (`max_pipes`); a new pipe beyond it fails ENFILE.
    public var maxPipes: Int
    /// Capacity reserved by all live pipes (`max_memory`); a pipe's capacity counts from
    /// its creation. A new pipe or a capacity change beyond it fails ENOSPC.
    public var maxMemory: Int
    /// The same per owning uid (`user_max_memory`); root's pipes count only in `maxMemory`.
    public var userMaxMemory: Int
    /// The largest capacity anyone but root may give a pipe (`max_capacity`); EPERM beyond.
    public var maxCapacity: Int
    /// Bytes of waiting writes copied out of their requests, in all: a quarter of
    /// `maxMemory`. A write that would have to wait beyond it fails ENOBUFS.
    public var maxWaitingBytes: Int { maxMemory / 4 }
    /// Names the kernel holds without a live pipe behind them (looked up, not open): at
    /// most this many; beyond it npfs asks the kernel to forget the oldest.
    public var maxIdleNames: Int

    public init(maxPipes: Int, maxMemory: Int, userMaxMemory: Int, maxCapacity: Int, maxIdleNames: Int = 65_536) {
        self.maxPipes = maxPipes
        self.maxMemory = maxMemory
        self.userMaxMemory = userMaxMemory
        self.maxCapacity = maxCapacity
        self.maxIdleNames = maxIdleNames
    }

    /// The defaults: 16384 pipes, an eighth of the machine's memory up to 1 GiB in all, a
    /// quarter of that per user, pipes of up to 1 MiB (the kernel's pipe-max-size).
    public static func defaults(physicalMemory: Int) -> MountLimits {
        let memory = max(16 << 20, min(1 << 30, physicalMemory / 8))
        return MountLimits(maxPipes: 16_384, maxMemory: memory, userMaxMemory: memory / 4, maxCapacity: 1 << 20)
    }

    /// No limits worth the name: for tests of everything else.
    public static let unlimited = MountLimits(maxPipes: .max, maxMemory: .max / 2, userMaxMemory: .max / 2,
                                              maxCapacity: PipeConfig.maximumCapacity, maxIdleNames: .max)
}

/// What the mount uses against its limits: kept by the registry under its lock.
public struct MountUsage: Sendable, Equatable {
    public var pipes = 0
    /// Capacity reserved by live pipes, in all and by owning uid.
    public var reserved = 0
    public var reservedByUser: [UInt32: Int] = [:]
    /// Names the kernel holds with no live pipe behind them.
    public var idleNames = 0
    /// Bytes of waiting writes held, and bytes of pipe buffers allocated (filled in when read).
    public var waitingBytes = 0
    public var allocatedBytes = 0

    /// Whether a new pipe of `capacity`, owned by `owner`, fits: nil, or ENFILE or ENOSPC.
    func admits(capacity: Int, owner: UInt32, _ limits: MountLimits) -> Errno? {
        if pipes >= limits.maxPipes { return .tooManyOpenFilesInSystem }
        return fits(extra: capacity, owner: owner, limits)
    }

    /// Whether `extra` more bytes of capacity fit for `owner`: nil, or ENOSPC.
    func fits(extra: Int, owner: UInt32, _ limits: MountLimits) -> Errno? {
        guard extra > 0 else { return nil }
        if reserved > limits.maxMemory - extra { return .noSpace }
        if owner != 0 && reservedByUser[owner, default: 0] > limits.userMaxMemory - extra { return .noSpace }
        return nil
    }

    /// The mount root's `user.npfs.usage`: `KEY=VALUE` lines of each figure and its limit,
    /// with `user_memory` that of `user`.
    public func report(_ limits: MountLimits, user: UInt32) -> String {
        [("pipes", pipes), ("max_pipes", limits.maxPipes),
         ("memory", reserved), ("max_memory", limits.maxMemory),
         ("user_memory", reservedByUser[user, default: 0]), ("user_max_memory", limits.userMaxMemory),
         ("max_capacity", limits.maxCapacity),
         ("waiting", waitingBytes), ("max_waiting", limits.maxWaitingBytes),
         ("idle_names", idleNames), ("max_idle_names", limits.maxIdleNames),
         ("allocated", allocatedBytes)].map { "\($0.0)=\($0.1)\n" }.joined()
    }

    mutating func reserve(_ bytes: Int, owner: UInt32) {
        reserved += bytes
        let total = reservedByUser[owner, default: 0] + bytes
        reservedByUser[owner] = total == 0 ? nil : total
    }
}

/// A budget of bytes shared by every pipe of a mount (the copies of waiting writes),
/// taken and given back from any thread.
public final class ByteBudget: Sendable {
    public let limit: Int
    private let used = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Takes `bytes` if they fit; false otherwise.
    func take(_ bytes: Int) -> Bool {
        var current = used.load(ordering: .relaxed)
        while true {
            guard current <= limit - bytes else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func give(_ bytes: Int) { used.subtract(bytes, ordering: .relaxed) }
}

/// The bytes of a write that waits for room, copied out of its FUSE request, charged to
/// the mount's budget for as long as they exist.
/// Not thread-safe: it lives in its pipe's locked state.
final class WaitingBytes {
    private let storage: UnsafeMutableRawBufferPointer
    private let budget: ByteBudget

    /// nil if the budget has no room for them.
    init?(copying source: UnsafeRawBufferPointer, budget: ByteBudget) {
        guard budget.take(source.count) else { return nil }
        storage = .allocate(byteCount: source.count, alignment: 16)
        if let from = source.baseAddress, let to = storage.baseAddress { to.copyMemory(from: from, byteCount: source.count) }
        self.budget = budget
    }

    /// The bytes, valid while this object lives.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }

    deinit {
        budget.give(storage.count)
        FreedMemory.note(storage.count)
        storage.deallocate()
    }
}
