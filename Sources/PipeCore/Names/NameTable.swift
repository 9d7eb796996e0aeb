/// Every name the kernel holds an inode for: lookups, forgets, the idle names to give back,
/// and which names are live pipes (with the opens that keep each one attached).
struct NameTable {
    /// A name the kernel holds an inode for.
    struct Node {
        let inode: InodeNumber
        /// The spelling `ls` shows: with ignore_case, that of the lookup just before the
        /// open that attached the pipe.
        var name: PipeName
        /// The spelling of the latest lookup.
        var lastLookedUp: PipeName
        /// `name` as names are matched (case-folded with ignore_case).
        let key: [UInt8]
        /// Entry replies not yet forgotten by the kernel.
        var lookups: UInt64 = 0
        var pipe: (any PipeEndpoint)?
        /// Opens of `pipe`, completed, waiting or being decided, and its pin: it stays
        /// attached while this is above zero.
        var opens = 0
        /// A persisted pipe of a local store: attached with no open (counted as one in `opens`).
        var pinned = false
        /// The capacity reserved for `pipe` against the limits, and the uid it counts for.
        var reserved = 0
        var reservedBy: UInt32 = 0
        /// While idle (looked up, no pipe): its entry in `idle`; 0 otherwise.
        var idleStamp: UInt64 = 0
        /// The kernel was asked to forget the name, and has not yet.
        var forgetting = false
    }

    var nodes: [InodeNumber: Node] = [:]
    var inodeByKey: [[UInt8]: InodeNumber] = [:]
    var nextInode: UInt64 = 2
    var idle = IdleNames()
    /// Idle names the kernel was asked to forget and has not yet.
    var forgetting = 0

    /// Counts one kernel reference to the name, giving it an inode on its first lookup.
    mutating func lookup(_ name: PipeName, key: [UInt8]) -> InodeNumber {
        var node: Node
        if let known = inodeByKey[key], let existing = nodes[known] {
            node = existing
        } else {
            let inode = InodeNumber(nextInode)
            nextInode += 1
            inodeByKey[key] = inode
            node = Node(inode: inode, name: name, lastLookedUp: name, key: key)
        }
        node.lookups += 1
        node.lastLookedUp = name
        if node.pipe == nil && node.idleStamp == 0 { markIdle(&node) }
        nodes[node.inode] = node
        return node.inode
    }

    /// The kernel dropped `count` references; an unused name is forgotten.
    mutating func forget(_ inode: InodeNumber, count: UInt64) {
        guard var node = nodes[inode] else { return }
        node.lookups -= min(count, node.lookups)
        nodes[inode] = node
        removeIfUnused(node)
    }

    /// Names for the kernel to forget (see `PipeRegistry.namesToForget`), with `live`
    /// pipes among the names.
    mutating func namesToForget(idleFor: Double?, now: Double, live: Int, limit: Int) -> [PipeName] {
        var names: [PipeName] = []
        while let oldest = idle.oldest {
            let tooMany = nodes.count - live - forgetting > limit
            guard tooMany || idleFor.map({ now - oldest.since >= $0 }) == true else { break }
            idle.popOldest()
            guard var node = nodes[oldest.inode], node.idleStamp == oldest.stamp, node.pipe == nil else { continue }
            node.idleStamp = 0
            node.forgetting = true
            forgetting += 1
            nodes[oldest.inode] = node
            names.append(node.lastLookedUp)
            if node.name != node.lastLookedUp { names.append(node.name) }
        }
        return names
    }

    /// The name becomes a live pipe: it is no longer idle, and shows the latest spelling.
    mutating func attach(_ pipe: any PipeEndpoint, to node: inout Node) {
        node.pipe = pipe
        node.name = node.lastLookedUp
        node.idleStamp = 0
        if node.forgetting { (node.forgetting, forgetting) = (false, forgetting - 1) }
    }

    /// Forgets a name the kernel no longer references and no open uses.
    mutating func removeIfUnused(_ node: Node) {
        guard node.lookups == 0, node.opens == 0 else { return }
        nodes[node.inode] = nil
        inodeByKey[node.key] = nil
        if node.forgetting { forgetting -= 1 }
        nodes.shrinkIfSparse()
        inodeByKey.shrinkIfSparse()
    }

    /// The name has no pipe now, and the kernel holds it: it joins the idle names.
    mutating func markIdle(_ node: inout Node) {
        node.idleStamp = idle.add(node.inode, now: Timestamp.monotonicSeconds())
        if node.forgetting { (node.forgetting, forgetting) = (false, forgetting - 1) }
    }
}
