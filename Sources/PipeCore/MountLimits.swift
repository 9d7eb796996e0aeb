import Synchronization
import SystemPackage

/// The mount's limits, in the spirit of the kernel's own accounting of pipe buffers
/// (`fs.pipe-max-size`, `fs.pipe-user-pages-*`, `fs.file-max`): one client cannot grow the
/// daemon until the OOM killer ends the mount for everyone.
package struct MountLimits: Sendable, Equatable {
    /// Live pipes at once (`max_pipes`); a new pipe beyond it fails ENFILE. The last
    /// `rootReservedPipes` of them only root may create (as the kernel keeps file-table
    /// entries for root).
    package var maxPipes: Int
    /// Live pipes owned by one uid (`user_max_pipes`); a new pipe beyond it fails EMFILE.
    /// Root's pipes count only in `maxPipes`.
    package var userMaxPipes: Int
    /// The pipes only root may create: a 64th of `maxPipes`.
    package var rootReservedPipes: Int { maxPipes / 64 }
    /// Capacity reserved by all live pipes (`max_memory`); a pipe's capacity counts from
    /// its creation. A new pipe or a capacity change beyond it fails ENOSPC.
    package var maxMemory: Int
    /// The same per owning uid (`user_max_memory`); root's pipes count only in `maxMemory`.
    /// A user's opens count here too, `openCost` bytes each.
    package var userMaxMemory: Int
    /// What one open is counted as against the memory limits: about what it holds.
    package static let openCost = 512
    /// The largest capacity anyone but root may give a pipe (`max_capacity`); EPERM beyond.
    package var maxCapacity: Int
    /// Bytes of waiting writes copied out of their requests that root's writes may hold:
    /// a quarter of `maxMemory`. A write that would have to wait beyond it fails ENOBUFS.
    package var maxWaitingBytes: Int { maxMemory / 4 }
    /// The same for each other uid, a quarter of `userMaxMemory`: a user beyond their own
    /// share is refused, never another user within theirs.
    package var userMaxWaitingBytes: Int { userMaxMemory / 4 }
    /// Names the kernel holds without a live pipe behind them (looked up, not open): at
    /// most this many; beyond it npfs asks the kernel to forget the oldest.
    package var maxIdleNames: Int

    package init(maxPipes: Int, userMaxPipes: Int? = nil, maxMemory: Int, userMaxMemory: Int, maxCapacity: Int,
                maxIdleNames: Int = 65_536) {
        self.maxPipes = maxPipes
        self.userMaxPipes = userMaxPipes ?? maxPipes
        self.maxMemory = maxMemory
        self.userMaxMemory = userMaxMemory
        self.maxCapacity = maxCapacity
        self.maxIdleNames = maxIdleNames
    }

    /// The defaults: 16384 pipes, a quarter of them per user; an eighth of the machine's
    /// memory up to 1 GiB in all, a quarter of that per user; pipes of up to 1 MiB (the
    /// kernel's pipe-max-size).
    package static func defaults(physicalMemory: Int) -> MountLimits {
        let memory = max(16 << 20, min(1 << 30, physicalMemory / 8))
        return MountLimits(maxPipes: 16_384, userMaxPipes: defaultUserMaxPipes(16_384), maxMemory: memory,
                           userMaxMemory: memory / 4, maxCapacity: 1 << 20)
    }

    /// A user's share of `maxPipes` unless given: a quarter, at least one.
    package static func defaultUserMaxPipes(_ maxPipes: Int) -> Int { max(1, maxPipes / 4) }

    /// No limits worth the name: for tests of everything else.
    package static let unlimited = MountLimits(maxPipes: .max, maxMemory: .max / 2, userMaxMemory: .max / 2,
                                              maxCapacity: PipeConfig.maximumCapacity, maxIdleNames: .max)
}

/// What the mount uses against its limits: kept by the registry under its lock.
package struct MountUsage: Sendable, Equatable {
    package var pipes = 0
    /// Live pipes by owning uid.
    package var pipesByUser: [UInt32: Int] = [:]
    /// Opens, each counted as `MountLimits.openCost` bytes in `reserved`.
    package var opens = 0
    /// Capacity reserved by live pipes, in all and by owning uid.
    package var reserved = 0
    package var reservedByUser: [UInt32: Int] = [:]
    /// Names the kernel holds with no live pipe behind them.
    package var idleNames = 0
    /// Bytes of waiting writes held, in all and (filled in for one user) by that user,
    /// and bytes of pipe buffers allocated (filled in when read).
    package var waitingBytes = 0
    package var userWaitingBytes = 0
    package var allocatedBytes = 0

    /// Whether a new pipe of `capacity`, owned by `owner`, fits: nil, or ENFILE (the
    /// mount's pipes, or all but root's reserve for others), EMFILE (the owner's share of
    /// pipes) or ENOSPC (memory).
    func admits(capacity: Int, owner: UInt32, _ limits: MountLimits) -> Errno? {
        if pipes >= limits.maxPipes { return .tooManyOpenFilesInSystem }
        if owner != 0 {
            if pipes >= limits.maxPipes - limits.rootReservedPipes { return .tooManyOpenFilesInSystem }
            if pipesByUser[owner, default: 0] >= limits.userMaxPipes { return .tooManyOpenFiles }
        }
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
    /// with `user_pipes`, `user_memory` and `user_waiting` those of `user`.
    package func report(_ limits: MountLimits, user: UInt32) -> String {
        // Root's own pipes, memory and waiting writes count only against the mount's limits.
        let root = user == 0
        return [("pipes", pipes), ("max_pipes", limits.maxPipes),
         ("user_pipes", pipesByUser[user, default: 0]), ("user_max_pipes", root ? limits.maxPipes : limits.userMaxPipes),
         ("memory", reserved), ("max_memory", limits.maxMemory),
         ("user_memory", reservedByUser[user, default: 0]), ("user_max_memory", root ? limits.maxMemory : limits.userMaxMemory),
         ("max_capacity", limits.maxCapacity), ("opens", opens),
         ("waiting", waitingBytes), ("max_waiting", limits.maxWaitingBytes),
         ("user_waiting", userWaitingBytes), ("user_max_waiting", root ? limits.maxWaitingBytes : limits.userMaxWaitingBytes),
         ("idle_names", idleNames), ("max_idle_names", limits.maxIdleNames),
         ("allocated", allocatedBytes)].map { "\($0.0)=\($0.1)\n" }.joined()
    }

    mutating func reserve(_ bytes: Int, owner: UInt32) {
        reserved += bytes
        let total = reservedByUser[owner, default: 0] + bytes
        reservedByUser[owner] = total == 0 ? nil : total
    }

    /// One open more (or fewer, with -1) made by `uid`, counted as `MountLimits.openCost` bytes.
    mutating func countOpen(_ change: Int, uid: UInt32) {
        opens += change
        reserve(change * MountLimits.openCost, owner: uid)
    }

    /// One live pipe more (or fewer, with -1) owned by `owner`.
    mutating func countPipe(_ change: Int, owner: UInt32) {
        pipes += change
        let total = pipesByUser[owner, default: 0] + change
        pipesByUser[owner] = total == 0 ? nil : total
    }
}

/// The bytes of waiting writes held by each uid, shared by every pipe of a mount and
/// taken and given back from any thread: each uid within its own share (root's is
/// `limit`, every other's `userLimit`), so one user cannot take another's.
package final class ByteBudget: Sendable {
    package let limit: Int
    package let userLimit: Int
    private let used = Mutex<(total: Int, byUser: [UInt32: Int])>((0, [:]))

    package init(limit: Int, userLimit: Int? = nil) {
        self.limit = limit
        self.userLimit = userLimit ?? limit
    }

    /// Bytes held in all.
    package var inUse: Int { used.withLock { $0.total } }

    /// Bytes held by `uid`'s writes.
    package func inUse(by uid: UInt32) -> Int { used.withLock { $0.byUser[uid, default: 0] } }

    /// Takes `bytes` for `uid` if they fit its share; false otherwise.
    func take(_ bytes: Int, for uid: UInt32) -> Bool {
        let share = uid == 0 ? limit : userLimit
        return used.withLock { used in
            let held = used.byUser[uid, default: 0]
            guard held <= share - bytes else { return false }
            used.byUser[uid] = held + bytes
            used.total += bytes
            return true
        }
    }

    func give(_ bytes: Int, for uid: UInt32) {
        used.withLock { used in
            let held = used.byUser[uid, default: 0] - bytes
            used.byUser[uid] = held > 0 ? held : nil
            used.total -= bytes
            used.byUser.shrinkIfSparse()
        }
    }
}

/// The bytes of a write that waits for room, copied out of its FUSE request, charged to
/// the mount's budget for as long as they exist.
/// Unchecked Sendable: its bytes never change after the copy, and the budget is thread-safe.
final class WaitingBytes: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer
    private let budget: ByteBudget
    private let uid: UInt32

    /// nil if `uid`'s share of the budget has no room for them.
    init?(copying source: UnsafeRawBufferPointer, budget: ByteBudget, uid: UInt32) {
        guard budget.take(source.count, for: uid) else { return nil }
        storage = .allocate(byteCount: source.count, alignment: 16)
        if let from = source.baseAddress, let to = storage.baseAddress { to.copyMemory(from: from, byteCount: source.count) }
        self.budget = budget
        self.uid = uid
    }

    /// The bytes, valid while this object lives.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }

    deinit {
        budget.give(storage.count, for: uid)
        FreedMemory.note(storage.count)
        storage.deallocate()
    }
}
