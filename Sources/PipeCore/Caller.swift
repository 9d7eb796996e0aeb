/// The process a request comes from, as the kernel reports it (the FUSE request context).
///
/// A plain value: it holds no reference to the request. Its supplementary groups cost a
/// read of /proc, so they are read only where a decision may need them, and always before
/// any lock is taken (`readingGroups(for:)`).
package struct Caller: Sendable {
    package var uid: UInt32
    package var gid: UInt32
    /// The calling thread's id.
    package var pid: Int32
    /// Supplementary groups, or nil while not read.
    package private(set) var groups: [UInt32]?
    /// Reads the supplementary groups of a thread (by its id).
    private let groupReader: @Sendable (Int32) -> [UInt32]

    /// A caller whose supplementary groups are known.
    package init(uid: UInt32, gid: UInt32, pid: Int32 = 0, groups: [UInt32] = []) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.groups = groups
        self.groupReader = { _ in groups }
    }

    /// A caller whose supplementary groups `reader` reads from the thread `pid` when asked.
    package init(uid: UInt32, gid: UInt32, pid: Int32, groupReader reader: @escaping @Sendable (Int32) -> [UInt32]) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.groups = nil
        self.groupReader = reader
    }

    /// Root passes every permission check on a pipe (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER).
    package var isRoot: Bool { uid == 0 }

    /// Whether deciding membership of `group` needs the supplementary groups, not read yet.
    package func lacksGroups(for group: UInt32) -> Bool { group != gid && groups == nil }

    /// The same caller with its supplementary groups read if membership of `group` needs
    /// them. Reads /proc: never call it with a lock held.
    package func readingGroups(for group: UInt32) -> Caller {
        guard lacksGroups(for: group) else { return self }
        var caller = self
        caller.groups = groupReader(pid)
        return caller
    }

    /// What `decision` answers for this caller, or nil if the answer depends on whether it
    /// is in `group` and its supplementary groups have not been read: the decision is
    /// made as a member and as a non-member, and only a disagreement needs the groups.
    package func answer<T: Equatable>(about group: UInt32, _ decision: (Caller) -> T) -> T? {
        guard lacksGroups(for: group) else { return decision(self) }
        var outside = self, inside = self
        (outside.groups, inside.groups) = ([], [group])
        let answer = decision(outside)
        return decision(inside) == answer ? answer : nil
    }

    /// The same, with the groups read (and kept) where the answer depends on them. Reads
    /// /proc: never call it with a lock held.
    package mutating func deciding<T: Equatable>(about group: UInt32, _ decision: (Caller) -> T) -> T {
        if let answer = answer(about: group, decision) { return answer }
        self = readingGroups(for: group)
        return decision(self)
    }

    /// Whether the caller belongs to `group`, as its primary or a supplementary group.
    /// The groups must have been read for it (`readingGroups(for:)`); if not, only the
    /// primary group counts.
    package func isMember(of group: UInt32) -> Bool {
        if group == gid { return true }
        assert(groups != nil, "membership asked before the caller's groups were read")
        return groups?.contains(group) ?? false
    }
}
