import Glibc
import Synchronization
import SystemPackage

/// Every name the kernel knows of and every live pipe: the seed driver's device extension.
///
/// A name gets an inode on its first lookup and keeps it until the kernel forgets it.
/// Its pipe is created by the first open and dropped when the last open is released
/// (or a waiting open is interrupted), discarding unread data as a kernel FIFO does.
/// Each open gets a `PipeHandle` that leads straight to its pipe: reads and writes do
/// no name lookup.
///
/// Lock order: `state` (this registry) before any pipe's lock.
public final class PipeRegistry: Sendable {
    public struct Configuration: Sendable {
        public var pipe: PipeConfig
        /// Match names with ASCII letters folded, as the seed driver did.
        public var ignoreCase: Bool
        /// A new pipe's permission bits (`pipe_mode`); its owner is the process that opened it.
        public var pipeMode: UInt32
        public var limits: MountLimits

        public init(pipe: PipeConfig, ignoreCase: Bool = false, pipeMode: UInt32 = 0o666, limits: MountLimits = .unlimited) {
            self.pipe = pipe
            self.ignoreCase = ignoreCase
            self.pipeMode = pipeMode & 0o7777
            self.limits = limits
        }
    }

    /// A name the kernel holds an inode for.
    struct Node {
        let inode: InodeNumber
        /// The spelling `ls` shows: with ignore_case, that of the lookup just before the
        /// open that created the pipe.
        var name: PipeName
        /// The spelling of the latest lookup.
        var lastLookedUp: PipeName
        /// `name` as names are matched (case-folded with ignore_case).
        let key: [UInt8]
        /// Entry replies not yet forgotten by the kernel.
        var lookups: UInt64 = 0
        var pipe: Pipe?
        /// Opens of `pipe`, completed or waiting: the pipe lives while this is above zero.
        var opens = 0
        /// The capacity reserved for `pipe` against the limits, and the uid it counts for.
        var reserved = 0
        var reservedBy: UInt32 = 0
        /// While idle (looked up, no pipe): its entry in `State.idle`; 0 otherwise.
        var idleStamp: UInt64 = 0
        /// The kernel was asked to forget the name, and has not yet.
        var forgetting = false
    }

    /// One open of a pipe.
    struct OpenFile {
        let pipe: Pipe
        let inode: InodeNumber
        let access: AccessMode
        /// `pipe_poll`'s seen-a-writer mark for POLLHUP.
        let hangUpVersion: UInt64
    }

    struct State {
        var nodes: [InodeNumber: Node] = [:]
        var inodeByKey: [[UInt8]: InodeNumber] = [:]
        var handles: [PipeHandle: OpenFile] = [:]
        var nextInode: UInt64 = 2
        var nextHandle: UInt64 = 1
        /// Shutting down: opens fail ENXIO and no request waits.
        var closed = false
        var usage = MountUsage()
        var idle = IdleNames()
        /// Idle names the kernel was asked to forget and has not yet.
        var forgetting = 0
    }

    public let configuration: Configuration
    private let state = Mutex(State())
    /// The bytes of waiting writes, shared by every pipe.
    private let waitingBudget: ByteBudget

    public init(configuration: Configuration) {
        self.configuration = configuration
        waitingBudget = ByteBudget(limit: configuration.limits.maxWaitingBytes)
    }

    /// What the mount uses now against `configuration.limits`.
    public var usage: MountUsage {
        let (counted, pipes) = state.withLock { state in (state.usage, state.nodes.values.compactMap(\.pipe)) }
        var usage = counted
        usage.idleNames = state.withLock { $0.nodes.count } - usage.pipes
        usage.waitingBytes = waitingBudget.inUse
        usage.allocatedBytes = pipes.reduce(0) { $0 + $1.status.allocated }
        return usage
    }

    // MARK: Names and inodes

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

    /// What a name that is not live shows `caller`: what it would get by opening it, a
    /// pipe of its own with the mount's `pipe_mode`.
    public func defaultOwnership(for caller: Caller) -> Ownership {
        Ownership(uid: caller.uid, gid: caller.gid, permissions: configuration.pipeMode)
    }

    /// FUSE `setattr` of the mode, owner or group (chmod, chown). ENOENT if the pipe is not
    /// live (a name with no pipe keeps no attributes), EPERM where chmod(2) and chown(2) would refuse.
    /// A pipe given to another user takes its reservation along (root's choice, over the limit or not).
    public func changeOwnership(of inode: InodeNumber, by caller: Caller, permissions: UInt32?, uid: UInt32?,
                                gid: UInt32?) throws(Errno) -> Ownership {
        try state.withLock { (state: inout State) throws(Errno) -> Ownership in
            guard var node = state.nodes[inode], let pipe = node.pipe else { throw .noSuchFileOrDirectory }
            let ownership = try pipe.changeOwnership(by: caller, permissions: permissions, uid: uid, gid: gid)
            if ownership.uid != node.reservedBy {
                state.usage.reserve(-node.reserved, owner: node.reservedBy)
                state.usage.reserve(node.reserved, owner: ownership.uid)
                node.reservedBy = ownership.uid
                state.nodes[inode] = node
            }
            return ownership
        }
    }

    // MARK: Settings and figures

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
        let status = try livePipe(inode).status
        guard status.ownership.permits(caller, .read) else { throw .permissionDenied }
        return attribute.value(in: status)
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
                if let error = state.usage.fits(extra: capacity - node.reserved, owner: node.reservedBy, limits) { return error }
                if let error = pipe.apply(setting, deliveries: &deliveries) { return error }
                state.usage.reserve(capacity - node.reserved, owner: node.reservedBy)
                node.reserved = capacity
                state.nodes[inode] = node
            }
            return nil
        }
        deliveries.deliver()
        if let error { throw error }
    }

    // MARK: Open and release

    /// FUSE `open`. The waiter is resumed with `.opened` once the pipe's other end appears;
    /// a `.done` answer is immediate. Creates the pipe on the first open of a name, owned
    /// by `caller`; EACCES if the pipe's permission bits do not let `caller` open it so.
    public func open(_ inode: InodeNumber, flags: Int32, caller: Caller, waiter: any PipeWaiter) -> Attempt {
        guard let access = AccessMode(openFlags: flags) else { return .done(.failed(.invalidArgument)) }
        let nonblocking = flags & O_NONBLOCK != 0
        var deliveries = Deliveries()
        let attempt: Attempt = state.withLock { state in
            guard var node = state.nodes[inode] else { return .done(.failed(.noSuchFileOrDirectory)) }
            if state.closed { return .done(.failed(.noSuchAddressOrDevice)) }
            let ownership = node.pipe?.ownership ?? defaultOwnership(for: caller)
            guard ownership.permits(caller, access) else { return .done(.failed(.permissionDenied)) }
            let creating = node.pipe == nil
            let capacity = configuration.pipe.capacity
            if creating, let error = state.usage.admits(capacity: capacity, owner: ownership.uid, configuration.limits) {
                return .done(.failed(error))
            }
            if creating { node.name = node.lastLookedUp }
            let pipe = node.pipe ?? Pipe(config: configuration.pipe, ownership: ownership, budget: waitingBudget)
            let handle = PipeHandle(rawValue: state.nextHandle)
            state.nextHandle += 1
            let (attempt, hangUpVersion) = pipe.open(handle, access: access, nonblocking: nonblocking,
                                                     waiter: waiter, deliveries: &deliveries)
            switch attempt {
            case .done(.failed):
                break
            default:
                if creating {
                    node.idleStamp = 0
                    if node.forgetting { (node.forgetting, state.forgetting) = (false, state.forgetting - 1) }
                    state.usage.pipes += 1
                    state.usage.reserve(capacity, owner: ownership.uid)
                    (node.reserved, node.reservedBy) = (capacity, ownership.uid)
                }
                node.pipe = pipe
                node.opens += 1
                state.nodes[inode] = node
                state.handles[handle] = OpenFile(pipe: pipe, inode: inode, access: access, hangUpVersion: hangUpVersion)
            }
            return attempt
        }
        deliveries.deliver()
        return attempt
    }

    /// FUSE `release`, and an open whose reply the kernel refused: the open is gone.
    public func release(_ handle: PipeHandle) {
        var deliveries = Deliveries()
        state.withLock { state in
            guard let open = state.handles.removeValue(forKey: handle) else { return }
            state.handles.shrinkIfSparse()
            open.pipe.close(handle, access: open.access, deliveries: &deliveries)
            state.dropOpen(of: open.inode)
        }
        deliveries.deliver()
    }

    /// Ends a waiting request that was interrupted: it is answered EINTR (or a write with
    /// the count it had taken) and, if it was an open, counts as never made.
    /// Does nothing if the request was answered already.
    public func interrupt(_ waiter: any PipeWaiter, inode: InodeNumber) {
        var deliveries = Deliveries()
        state.withLock { state in
            guard let pipe = state.nodes[inode]?.pipe else { return }
            if case .open(let handle) = pipe.cancel(waiter, deliveries: &deliveries) {
                state.handles[handle] = nil
                state.dropOpen(of: inode)
            }
        }
        deliveries.deliver()
    }

    /// Shutdown: answers every waiting request (waiting opens fail ENXIO, reads see end
    /// of file, writes return what they wrote or EPIPE) and from then on nothing waits:
    /// reads drain what is buffered and then see end of file, writes fail EPIPE, opens ENXIO.
    public func close() {
        var deliveries = Deliveries()
        state.withLock { state in
            state.closed = true
            for node in state.nodes.values {
                guard let pipe = node.pipe else { continue }
                for handle in pipe.closeForShutdown(deliveries: &deliveries) {
                    state.handles[handle] = nil
                    state.dropOpen(of: node.inode)
                }
            }
        }
        deliveries.deliver()
    }

    // MARK: Data

    /// FUSE `read`. With no waiter, answers `.mustWait` (changing nothing) where it would wait.
    public func read(_ handle: PipeHandle, size: Int, offset: Int64, flags: Int32, waiter: (any PipeWaiter)?) -> Attempt {
        guard let open = openFile(handle) else { return .done(.failed(.badFileDescriptor)) }
        return open.pipe.read(size: size, offset: offset, nonblocking: flags & O_NONBLOCK != 0, waiter: waiter)
    }

    /// FUSE `write`. With no waiter, answers `.mustWait` (changing nothing) where it would wait.
    public func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, flags: Int32,
                      waiter: (any PipeWaiter)?) -> Attempt {
        guard let open = openFile(handle) else { return .done(.failed(.badFileDescriptor)) }
        return open.pipe.write(bytes, offset: offset, nonblocking: flags & O_NONBLOCK != 0, waiter: waiter)
    }

    /// FUSE `poll`: the open's readiness; a notifier, if given, is told of the next change.
    public func poll(_ handle: PipeHandle, notifier: (any PollNotifier)?) -> PollEvents? {
        guard let open = openFile(handle) else { return nil }
        return open.pipe.poll(handle, access: open.access, hangUpVersion: open.hangUpVersion, notifier: notifier)
    }

    /// Opens that have not been released yet.
    public var openCount: Int { state.withLock { $0.handles.count } }

    private func openFile(_ handle: PipeHandle) -> OpenFile? {
        state.withLock { $0.handles[handle] }
    }
}

extension PipeRegistry.State {
    /// One open of the inode's pipe is gone; the last one frees the pipe.
    mutating func dropOpen(of inode: InodeNumber) {
        guard var node = nodes[inode] else { return }
        node.opens -= 1
        assert(node.opens >= 0)
        if node.opens == 0 && node.pipe != nil {
            node.pipe = nil
            usage.pipes -= 1
            usage.reserve(-node.reserved, owner: node.reservedBy)
            node.reserved = 0
            if node.lookups > 0 { markIdle(&node) }
        }
        nodes[inode] = node
        removeIfUnused(node)
    }

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
