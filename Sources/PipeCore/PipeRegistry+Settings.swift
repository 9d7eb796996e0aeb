import SystemPackage

/// Owners, settings and figures of live pipes, and the memory their capacities reserve.
extension PipeRegistry {
    /// What a name that is not live shows `caller`: what it would get by opening it, a
    /// pipe of its own with the mount's `pipe_mode`.
    public func defaultOwnership(for caller: Caller) -> Ownership {
        Ownership(uid: caller.uid, gid: caller.gid, permissions: configuration.pipeMode)
    }

    /// FUSE `setattr` of the mode, owner or group (chmod, chown). ENOENT if the pipe is not
    /// live (a name with no pipe keeps no attributes), EPERM where chmod(2) and chown(2) would refuse.
    /// A pipe given to another user takes its reservation and its place among that user's
    /// pipes along (root's choice, over the limits or not).
    public func changeOwnership(of inode: InodeNumber, by caller: Caller, permissions: UInt32?, uid: UInt32?,
                                gid: UInt32?) throws(Errno) -> Ownership {
        let caller = gid.map { caller.readingGroups(for: $0) } ?? caller   // chgrp: before the lock
        return try state.withLock { (state: inout State) throws(Errno) -> Ownership in
            guard var node = state.nodes[inode], let pipe = node.pipe else { throw .noSuchFileOrDirectory }
            let ownership = try pipe.changeOwnership(by: caller, permissions: permissions, uid: uid, gid: gid)
            if ownership.uid != node.reservedBy {
                state.usage.reserve(-node.reserved, owner: node.reservedBy)
                state.usage.reserve(node.reserved, owner: ownership.uid)
                state.usage.countPipe(-1, owner: node.reservedBy)
                state.usage.countPipe(1, owner: ownership.uid)
                node.reservedBy = ownership.uid
                state.nodes[inode] = node
            }
            return ownership
        }
    }

    /// The inode of a name the kernel knows, without looking it up (no node is created).
    public func knownInode(named name: PipeName) -> InodeNumber? {
        let key = name.key(ignoringCase: configuration.ignoreCase)
        return state.withLock { $0.inodeByKey[key] }
    }

    /// The live pipe behind an inode; ENOENT if it has no open (the name is not a pipe now).
    public func livePipe(_ inode: InodeNumber) throws(Errno) -> Pipe {
        guard let pipe = state.withLock({ $0.nodes[inode]?.pipe }) else { throw .noSuchFileOrDirectory }
        return pipe
    }

    /// `getfattr`: one attribute's value. ENOENT if the pipe is not live, EACCES if
    /// `caller` may not read the pipe.
    public func attribute(_ attribute: PipeAttribute, of inode: InodeNumber, caller: Caller) throws(Errno) -> String {
        var caller = caller
        let status = try livePipe(inode).status
        guard Self.mayRead(status.ownership, &caller) else { throw .permissionDenied }
        return attribute.value(in: status)
    }

    /// `user.npfs.clients`: the pipe's opens, oldest first. ENOENT if the pipe is not
    /// live, EACCES if `caller` may not read it.
    public func clients(of inode: InodeNumber, caller: Caller) throws(Errno) -> [PipeClient] {
        var caller = caller
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
    func opensByInode(_ inodes: Set<InodeNumber>) -> [InodeNumber: [(PipeHandle, OpenFile)]] {
        let opens = state.withLock { state in state.handles.filter { inodes.contains($0.value.inode) } }
        return Dictionary(grouping: opens.map { ($0.key, $0.value) }, by: { $0.1.inode })
            .mapValues { $0.sorted { $0.0.rawValue < $1.0.rawValue } }
    }

    /// One pipe's opens as clients, with what each waits for now.
    static func clients(_ opens: [(PipeHandle, OpenFile)]) -> [PipeClient] {
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
    public func peek(_ inode: InodeNumber, max: Int, caller: Caller, process: Int32? = nil) throws(Errno) -> [UInt8] {
        var caller = caller
        let pipe = try livePipe(inode)
        guard Self.mayRead(pipe.ownership, &caller) else { throw .permissionDenied }
        let reader = process.flatMap { process in
            opensByInode([inode])[inode]?.last { $0.1.access.reads && $0.1.client.pid == process }?.0
        }
        return pipe.peek(min(max, PipeAttribute.peekLimit), reader: reader)
    }

    /// `setfattr`: changes a setting at once. ENOENT if not live, EPERM for a figure or
    /// for a caller that is neither the pipe's owner nor root, EINVAL for a bad value,
    /// EBUSY for a capacity below what is buffered.
    public func setAttribute(_ attribute: PipeAttribute, to value: String, of inode: InodeNumber, caller: Caller) throws(Errno) {
        try setAttributes([(attribute, value)], of: inode, caller: caller)
    }

    /// Several settings (`npfs set`): all values are checked first (EPERM, EINVAL), then
    /// applied in order; the first that fails stops the rest. A capacity beyond
    /// `max_capacity` is root's to give (EPERM), and one that the memory limits do not
    /// allow fails ENOSPC; below what is buffered, EBUSY.
    public func setAttributes(_ changes: [(PipeAttribute, String)], of inode: InodeNumber, caller: Caller) throws(Errno) {
        let limits = configuration.limits
        var deliveries = Deliveries()
        let error: Errno? = state.withLock { state in
            guard var node = state.nodes[inode], let pipe = node.pipe else { return .noSuchFileOrDirectory }
            guard pipe.ownership.isOwned(by: caller) else { return .notPermitted }
            var settings: [Pipe.Setting] = []
            for (attribute, value) in changes {
                do throws(Errno) { settings.append(try attribute.setting(from: value)) } catch { return error }
            }
            for setting in settings {
                guard case .capacity(let capacity) = setting else {
                    if let error = pipe.apply(setting, deliveries: &deliveries) { return error }
                    continue
                }
                if capacity > limits.maxCapacity && !caller.isRoot { return .notPermitted }
                // Never less than the capacity it was created with: shrinking a pipe makes
                // no room for more pipes.
                let reserved = max(capacity, configuration.pipe.capacity)
                if let error = state.usage.fits(extra: reserved - node.reserved, owner: node.reservedBy, limits) { return error }
                if let error = pipe.apply(setting, deliveries: &deliveries) { return error }
                state.usage.reserve(reserved - node.reserved, owner: node.reservedBy)
                node.reserved = reserved
                state.nodes[inode] = node
            }
            return nil
        }
        deliveries.deliver()
        if let error { throw error }
    }
}
