import SystemPackage

/// Owners, settings and figures of live pipes, and the memory their capacities reserve.
extension PipeRegistry {
    /// What a name that is not live shows `caller`: what it would get by opening it, a
    /// pipe of its own with the mount's `pipe_mode`.
    package func defaultOwnership(for caller: Caller) -> Ownership {
        Ownership(uid: caller.uid, gid: caller.gid, permissions: configuration.pipeMode)
    }

    /// FUSE `setattr` of the mode, owner or group (chmod, chown). ENOENT if the pipe is not
    /// live (a name with no pipe keeps no attributes), EPERM where chmod(2) and chown(2) would refuse.
    /// A pipe given to another user takes its reservation and its place among that user's
    /// pipes along (root's choice, over the limits or not).
    package func changeOwnership(of inode: InodeNumber, by caller: Caller, permissions: UInt32?, uid: UInt32?,
                                gid: UInt32?) throws(Errno) -> Ownership {
        let caller = gid.map { caller.readingGroups(for: $0) } ?? caller   // chgrp: before any lock
        return try reservations.withLock { _ throws(Errno) -> Ownership in
            try withPipe(inode) { pipe throws(Errno) in
                let ownership = try pipe.changeOwnership(by: caller, permissions: permissions, uid: uid, gid: gid)
                state.withLock { state in
                    guard var node = state.names.nodes[inode], node.pipe === pipe, ownership.uid != node.reservedBy else { return }
                    state.usage.reserve(-node.reserved, owner: node.reservedBy)
                    state.usage.reserve(node.reserved, owner: ownership.uid)
                    state.usage.countPipe(-1, owner: node.reservedBy)
                    state.usage.countPipe(1, owner: ownership.uid)
                    node.reservedBy = ownership.uid
                    state.names.nodes[inode] = node
                }
                return ownership
            }
        }
    }

    /// The inode of a name the kernel knows, without looking it up (no node is created).
    package func knownInode(named name: PipeName) -> InodeNumber? {
        let key = name.key(ignoringCase: configuration.ignoreCase)
        return state.withLock { $0.names.inodeByKey[key] }
    }

    /// The live pipe behind an inode; ENOENT if it has no open (the name is not a pipe now).
    package func livePipe(_ inode: InodeNumber) throws(Errno) -> any PipeEndpoint {
        guard let pipe = state.withLock({ $0.names.nodes[inode]?.pipe }) else { throw .noSuchFileOrDirectory }
        return pipe
    }

    /// A live pipe, here or (a shared store's) on another host, is behind the inode.
    package func isPipe(_ inode: InodeNumber) -> Bool {
        guard let (key, live) = state.withLock({ $0.names.nodes[inode].map { ($0.key, $0.pipe != nil) } }) else { return false }
        return live || store.sharedNames.contains(key)
    }

    /// `body` with the pipe behind an inode, its state read (a shared store's as committed:
    /// other hosts tell this one only of what its pollers need): the live one, or a shared
    /// store's pipe that lives on other hosts only, attached for the call like an open.
    /// ENOENT if neither. A shared store's calls wait for it: never on a FUSE thread.
    func withPipe<T>(_ inode: InodeNumber, _ body: (any PipeEndpoint) throws(Errno) -> T) throws(Errno) -> T {
        if let pipe = state.withLock({ $0.names.nodes[inode]?.pipe }) {
            try pipe.load()
            return try body(pipe)
        }
        guard isPipe(inode), let pipe = state.withLock({ $0.attachForCall(inode, store: store) }) else { throw .noSuchFileOrDirectory }
        defer { state.withLock { $0.dropOpen(of: inode, store: store) } }
        try pipe.load()
        return try body(pipe)
    }

    /// `getfattr`: one attribute's value. ENOENT if the pipe is not live, EACCES if
    /// `caller` may not read the pipe.
    package func attribute(_ attribute: PipeAttribute, of inode: InodeNumber, caller: Caller) throws(Errno) -> String {
        var caller = caller
        let status = try withPipe(inode) { $0.status }
        guard Self.mayRead(status.ownership, &caller) else { throw .permissionDenied }
        return attribute.value(in: status)
    }

    /// `user.npfs.clients`: the pipe's opens, oldest first. ENOENT if the pipe is not
    /// live, EACCES if `caller` may not read it.
    package func clients(of inode: InodeNumber, caller: Caller) throws(Errno) -> [PipeClient] {
        var caller = caller
        // A shared store's pipe: its clients on every host, as the server has them.
        if let key = state.withLock({ $0.names.nodes[inode]?.key }), let shared = store.sharedStatus(of: key) {
            guard let pipe = shared.first else { throw .noSuchFileOrDirectory }
            guard Self.mayRead(pipe.status.ownership, &caller) else { throw .permissionDenied }
            return pipe.clients
        }
        let pipe = try livePipe(inode)
        guard Self.mayRead(pipe.ownership, &caller) else { throw .permissionDenied }
        return Self.clients(opensByInode([inode])[inode] ?? [])
    }

    /// Whether `caller` may read a pipe's figures, clients and bytes: as it may open it for
    /// reading. Reads the caller's groups if they decide: never call it with a lock held.
    static func mayRead(_ ownership: Ownership, _ caller: inout Caller) -> Bool {
        caller.deciding(about: ownership.gid) { ownership.permits($0, .read) }
    }

    /// The opens of the given pipes, each pipe's oldest first, as the registry holds them.
    func opensByInode(_ inodes: Set<InodeNumber>) -> [InodeNumber: [(PipeHandle, OpenTable.OpenFile)]] {
        state.withLock { $0.opens.byInode(inodes) }
    }

    /// One pipe's opens as clients, with what each waits for now.
    static func clients(_ opens: [(PipeHandle, OpenTable.OpenFile)]) -> [PipeClient] {
        guard let pipe = opens.first?.1.pipe else { return [] }
        let (waiting, lost) = pipe.openFigures
        return opens.map { handle, open in
            PipeClient(identity: open.client, access: open.access, since: open.since, waiting: waiting[handle], lost: lost[handle])
        }
    }

    /// `user.npfs.peek`: what the next read of `process` (a thread group id) would return,
    /// up to `max` (at most `PipeAttribute.peekLimit`) bytes, without taking them: by its
    /// newest open that reads, or, if it has none, by the pipe's newest reader (see
    /// `PipeMachine.peek`). ENOENT if the pipe is not live, EACCES if `caller` may not read it.
    package func peek(_ inode: InodeNumber, max: Int, caller: Caller, process: Int32? = nil) throws(Errno) -> [UInt8] {
        var caller = caller
        return try withPipe(inode) { pipe throws(Errno) in
            guard Self.mayRead(pipe.ownership, &caller) else { throw .permissionDenied }
            let reader = process.flatMap { process in
                opensByInode([inode])[inode]?.last { $0.1.access.reads && $0.1.client.pid == process }?.0
            }
            return pipe.peek(min(max, PipeAttribute.peekLimit), reader: reader)
        }
    }

    /// `unlink`: a persisted pipe is persisted no more, and goes (now if nothing has it
    /// open, else with its last close; its bytes with it). EPERM for every other name
    /// (each name is a pipe, and cannot be removed) and for a caller who is neither the
    /// pipe's owner nor root. A shared store's pipe that no open of this mount attaches
    /// is attached for the call.
    package func remove(_ name: PipeName, caller: Caller) throws(Errno) {
        // The kernel looks a name up before it unlinks it: one it never looked up is no pipe.
        guard let inode = knownInode(named: name) else { throw .notPermitted }
        try reservations.withLock { _ throws(Errno) in
            do throws(Errno) {
                try withPipe(inode) { pipe throws(Errno) in try pipe.unpersist(by: caller) }
            } catch .noSuchFileOrDirectory {
                throw .notPermitted
            }
            state.withLock { $0.pin(inode, false, store: store) }
        }
    }

    /// `setfattr`: changes a setting at once. ENOENT if not live, EPERM for a figure or
    /// for a caller that is neither the pipe's owner nor root, EINVAL for a bad value,
    /// EBUSY for a capacity below what is buffered.
    package func setAttribute(_ attribute: PipeAttribute, to value: String, of inode: InodeNumber, caller: Caller) throws(Errno) {
        try setAttributes([(attribute, value)], of: inode, caller: caller)
    }

    /// Several settings (`npfs set`): all values are checked first (EPERM, EINVAL), then
    /// applied in order; the first that fails stops the rest. A capacity beyond
    /// `max_capacity` is root's to give (EPERM), and one that the memory limits do not
    /// allow fails ENOSPC; below what is buffered, EBUSY.
    package func setAttributes(_ changes: [(PipeAttribute, String)], of inode: InodeNumber, caller: Caller) throws(Errno) {
        let limits = configuration.limits
        try reservations.withLock { _ throws(Errno) in
            try withPipe(inode) { pipe throws(Errno) in
                guard pipe.ownership.isOwned(by: caller) else { throw .notPermitted }
                var settings: [PipeSetting] = []
                for (attribute, value) in changes { settings.append(try attribute.setting(from: value)) }
                for setting in settings {
                    guard case .capacity(let capacity) = setting else {
                        try pipe.apply(setting)
                        if case .persist(let on) = setting { state.withLock { $0.pin(inode, on, store: store) } }
                        continue
                    }
                    if capacity > limits.maxCapacity && !caller.isRoot { throw .notPermitted }
                    // Never less than the capacity it was created with: shrinking a pipe makes
                    // no room for more pipes. Reserved first, given back if the pipe refuses.
                    let reserved = max(capacity, configuration.pipe.capacity)
                    let extra = try state.withLock { (state: inout State) throws(Errno) -> Int in
                        guard var node = state.names.nodes[inode], node.pipe === pipe else { throw .noSuchFileOrDirectory }
                        let extra = reserved - node.reserved
                        if let error = state.usage.fits(extra: extra, owner: node.reservedBy, limits) { throw error }
                        state.usage.reserve(extra, owner: node.reservedBy)
                        node.reserved = reserved
                        state.names.nodes[inode] = node
                        return extra
                    }
                    do throws(Errno) {
                        try pipe.apply(setting)
                    } catch {
                        state.withLock { state in
                            guard var node = state.names.nodes[inode], node.pipe === pipe else { return }
                            state.usage.reserve(-extra, owner: node.reservedBy)
                            node.reserved -= extra
                            state.names.nodes[inode] = node
                        }
                        throw error
                    }
                }
            }
        }
    }
}
