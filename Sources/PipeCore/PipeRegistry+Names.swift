import SystemPackage

/// Names and inodes: every name the kernel looks up is a pipe; idle names are given back.
extension PipeRegistry {
    /// FUSE `lookup`: every valid name is a pipe. Counts one kernel reference to the inode.
    public func lookup(_ name: PipeName) -> InodeNumber {
        let key = name.key(ignoringCase: configuration.ignoreCase)
        return state.withLock { state in
            var node: Node
            if let known = state.inodeByKey[key], let existing = state.nodes[known] {
                node = existing
            } else {
                let inode = InodeNumber(state.nextInode)
                state.nextInode += 1
                state.inodeByKey[key] = inode
                node = Node(inode: inode, name: name, lastLookedUp: name, key: key)
            }
            node.lookups += 1
            node.lastLookedUp = name
            if node.pipe == nil && node.idleStamp == 0 { state.markIdle(&node) }
            state.nodes[node.inode] = node
            return node.inode
        }
    }

    /// Names the kernel should forget: the oldest idle ones (looked up, no live pipe)
    /// while more than `max_idle_names` are held, and any idle for `idleFor` seconds or
    /// more, each in every spelling it was looked up by lately. The adapter asks the
    /// kernel (from another thread), which then sends `forget` for them: the daemon's
    /// tables shrink back once a load of lookups is over.
    public func namesToForget(idleFor: Double? = nil, now: Double = Timestamp.monotonicSeconds()) -> [PipeName] {
        let limit = configuration.limits.maxIdleNames
        return state.withLock { state in
            var names: [PipeName] = []
            while let oldest = state.idle.oldest {
                let tooMany = state.nodes.count - state.usage.pipes - state.forgetting > limit
                guard tooMany || idleFor.map({ now - oldest.since >= $0 }) == true else { break }
                state.idle.popOldest()
                guard var node = state.nodes[oldest.inode], node.idleStamp == oldest.stamp, node.pipe == nil else { continue }
                node.idleStamp = 0
                node.forgetting = true
                state.forgetting += 1
                state.nodes[oldest.inode] = node
                names.append(node.lastLookedUp)
                if node.name != node.lastLookedUp { names.append(node.name) }
            }
            return names
        }
    }

    /// FUSE `forget`: the kernel dropped `count` references; an unused name is forgotten.
    public func forget(_ inode: InodeNumber, count: UInt64) {
        state.withLock { state in
            guard var node = state.nodes[inode] else { return }
            node.lookups -= min(count, node.lookups)
            state.nodes[inode] = node
            state.removeIfUnused(node)
        }
    }

    /// The name and pipe behind an inode, or nil if the kernel never looked it up.
    public func node(_ inode: InodeNumber) -> (name: PipeName, status: Pipe.Status?)? {
        let found = state.withLock { state in state.nodes[inode].map { ($0.name, $0.pipe) } }
        guard let (name, pipe) = found else { return nil }
        return (name, pipe?.status)
    }

    /// The live pipes (with at least one open, complete or waiting), for `readdir`.
    public func livePipes() -> [(inode: InodeNumber, name: PipeName)] {
        state.withLock { state in
            state.nodes.values.filter { $0.pipe != nil }.map { ($0.inode, $0.name) }
        }.sorted { $0.inode.rawValue < $1.inode.rawValue }
    }
}

extension PipeRegistry.State {
    /// Forgets a name the kernel no longer references and no open uses.
    mutating func removeIfUnused(_ node: PipeRegistry.Node) {
        guard node.lookups == 0, node.opens == 0 else { return }
        nodes[node.inode] = nil
        inodeByKey[node.key] = nil
        if node.forgetting { forgetting -= 1 }
        nodes.shrinkIfSparse()
        inodeByKey.shrinkIfSparse()
    }

    /// The name has no pipe now, and the kernel holds it: it joins the idle names.
    mutating func markIdle(_ node: inout PipeRegistry.Node) {
        node.idleStamp = idle.add(node.inode, now: Timestamp.monotonicSeconds())
        if node.forgetting { (node.forgetting, forgetting) = (false, forgetting - 1) }
    }
}

extension Dictionary {
    /// Gives back the storage of a table that grew under a load and is mostly empty now
    /// (a dictionary keeps its capacity when elements are removed).
    public mutating func shrinkIfSparse() {
        guard capacity > 1024 && count * 8 < capacity else { return }
        var fresh = Dictionary(minimumCapacity: count)
        for (key, value) in self { fresh[key] = value }
        self = fresh
    }
}
