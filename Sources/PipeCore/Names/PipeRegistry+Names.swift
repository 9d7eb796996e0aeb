import SystemPackage

/// Names and inodes (`NameTable`): every name the kernel looks up is a pipe; idle names are given back.
extension PipeRegistry {
    /// FUSE `lookup`: every valid name is a pipe. Counts one kernel reference to the inode.
    package func lookup(_ name: PipeName) -> InodeNumber {
        let key = name.key(ignoringCase: configuration.ignoreCase)
        return state.withLock { $0.names.lookup(name, key: key) }
    }

    /// Names the kernel should forget: the oldest idle ones (looked up, no live pipe)
    /// while more than `max_idle_names` are held, and any idle for `idleFor` seconds or
    /// more, each in every spelling it was looked up by lately. The adapter asks the
    /// kernel (from another thread), which then sends `forget` for them: the daemon's
    /// tables shrink back once a load of lookups is over.
    package func namesToForget(idleFor: Double? = nil, now: Double = Timestamp.monotonicSeconds()) -> [PipeName] {
        let limit = configuration.limits.maxIdleNames
        return state.withLock { state in
            state.names.namesToForget(idleFor: idleFor, now: now, live: state.usage.pipes, limit: limit)
        }
    }

    /// `body` with the inode of a name asked for through the mount root (`npfs set`, a
    /// root attribute), counted as one lookup for the call: a cluster's pipe that lives on
    /// other hosts only has no inode here until the name is looked up.
    package func withName<T>(_ name: PipeName, _ body: (InodeNumber) throws(Errno) -> T) throws(Errno) -> T {
        let inode = lookup(name)
        defer { forget(inode, count: 1) }
        return try body(inode)
    }

    /// FUSE `forget`: the kernel dropped `count` references; an unused name is forgotten.
    package func forget(_ inode: InodeNumber, count: UInt64) {
        state.withLock { $0.names.forget(inode, count: count) }
    }

    /// The name and pipe behind an inode, or nil if the kernel never looked it up.
    package func node(_ inode: InodeNumber) -> (name: PipeName, status: PipeStatus?)? {
        let found = state.withLock { state in state.names.nodes[inode].map { ($0.name, $0.pipe) } }
        guard let (name, pipe) = found else { return nil }
        return (name, pipe?.status)
    }

    /// The live pipes (with at least one open, complete or waiting), for `readdir`: this
    /// mount's, then those live only on other hosts of a shared store, whose inode numbers
    /// (unknown here until a lookup) are derived from their names.
    package func livePipes() -> [(inode: InodeNumber, name: PipeName)] {
        let local = state.withLock { state in
            state.names.nodes.values.filter { $0.pipe != nil }.map { ($0.inode, $0.name, $0.key) }
        }.sorted { $0.0.rawValue < $1.0.rawValue }
        let shared = store.sharedNames
        guard !shared.isEmpty else { return local.map { ($0.0, $0.1) } }
        let known = Set(local.map(\.2))
        let remote = shared.filter { !known.contains($0) }.sorted { $0.lexicographicallyPrecedes($1) }.compactMap { key -> (InodeNumber, PipeName)? in
            guard let name = try? PipeName(bytes: key) else { return nil }
            return (InodeNumber.derived(from: key), name)
        }
        return local.map { ($0.0, $0.1) } + remote
    }
}

extension Dictionary {
    /// Gives back the storage of a table that grew under a load and is mostly empty now
    /// (a dictionary keeps its capacity when elements are removed).
    package mutating func shrinkIfSparse() {
        guard capacity > 1024 && count * 8 < capacity else { return }
        var fresh = Dictionary(minimumCapacity: count)
        for (key, value) in self { fresh[key] = value }
        self = fresh
    }
}
