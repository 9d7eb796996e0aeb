import Synchronization

/// The process a request comes from, as the kernel reports it (the FUSE request context).
public struct Caller: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// The calling thread's id.
    public var pid: Int32
    /// Supplementary groups. Looking them up costs a read of /proc, so a decision asks
    /// only when the answer depends on them.
    public var groups: @Sendable () -> [UInt32]

    public init(uid: UInt32, gid: UInt32, pid: Int32 = 0, groups: @escaping @Sendable () -> [UInt32] = { [] }) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.groups = groups
    }

    /// Root passes every permission check on a pipe (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER).
    public var isRoot: Bool { uid == 0 }

    /// Whether the caller belongs to `group`, as its primary or a supplementary group.
    public func isMember(of group: UInt32) -> Bool { gid == group || groups().contains(group) }
}

extension Caller {
    /// The same caller with its groups looked up at most once (for a decision per pipe).
    func lookingUpGroupsOnce() -> Caller {
        let once = GroupsOnce(groups)
        return Caller(uid: uid, gid: gid, pid: pid) { once.value }
    }
}

/// Supplementary groups looked up on first use, then remembered.
private final class GroupsOnce: Sendable {
    private let lookup: @Sendable () -> [UInt32]
    private let cache = Mutex<[UInt32]?>(nil)

    init(_ lookup: @escaping @Sendable () -> [UInt32]) { self.lookup = lookup }

    var value: [UInt32] {
        cache.withLock { cached in
            if let cached { return cached }
            let groups = lookup()
            cached = groups
            return groups
        }
    }
}
