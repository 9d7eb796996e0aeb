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
        /// Who may open another user's live pipe with O_CREAT (`protected_pipes`).
        public var protection: PipeProtection
        /// The uid that mounted: its pipes are never protected against.
        public var mountOwner: UInt32

        public init(pipe: PipeConfig, ignoreCase: Bool = false, pipeMode: UInt32 = 0o666, limits: MountLimits = .unlimited,
                    protection: PipeProtection = .off, mountOwner: UInt32 = 0) {
            self.pipe = pipe
            self.ignoreCase = ignoreCase
            self.pipeMode = pipeMode & 0o7777
            self.limits = limits
            self.protection = protection
            self.mountOwner = mountOwner
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
        /// Who made the open, and when.
        let client: ClientIdentity
        let since: Timestamp
        /// `pipe_poll`'s seen-a-writer mark for POLLHUP.
        let hangUpVersion: UInt64
        /// The uid the open and its waiting writes are counted for: its caller's.
        let uid: UInt32
    }

    struct State {
        var nodes: [InodeNumber: Node] = [:]
        var inodeByKey: [[UInt8]: InodeNumber] = [:]
        var handles: [PipeHandle: OpenFile] = [:]
        var nextInode: UInt64 = 2
        var nextHandle: UInt64 = 1
        /// Shutting down, or the mount detached: opens fail ENXIO.
        var refusingOpens = false
        var usage = MountUsage()
        var idle = IdleNames()
        /// Idle names the kernel was asked to forget and has not yet.
        var forgetting = 0
    }

    public let configuration: Configuration
    let state = Mutex(State())
    /// The bytes of waiting writes, shared by every pipe.
    let waitingBudget: ByteBudget

    public init(configuration: Configuration) {
        self.configuration = configuration
        waitingBudget = ByteBudget(limit: configuration.limits.maxWaitingBytes, userLimit: configuration.limits.userMaxWaitingBytes)
    }

    /// What the mount uses now against `configuration.limits`.
    public var usage: MountUsage { usage(of: 0) }

    /// The same, with `userWaitingBytes` that of `user`.
    public func usage(of user: UInt32 = 0) -> MountUsage {
        let (counted, names, pipes) = state.withLock { ($0.usage, $0.nodes.count, $0.nodes.values.compactMap(\.pipe)) }
        var usage = counted
        usage.idleNames = names - usage.pipes
        usage.waitingBytes = waitingBudget.inUse
        usage.userWaitingBytes = waitingBudget.inUse(by: user)
        usage.allocatedBytes = pipes.reduce(0) { $0 + $1.status.allocated }
        return usage
    }

    // MARK: Open and release

    /// FUSE `open`. The waiter is resumed with `.opened` once the pipe's other end appears;
    /// a `.done` answer is immediate. Creates the pipe on the first open of a name, owned
    /// by `caller`; EACCES if the pipe's permission bits do not let `caller` open it so, or
    /// if the open was made with O_CREAT (`creating`) and `protection` refuses it.
    /// `client` names the process for `npfs status --clients` (by default, the caller's ids).
    ///
    /// The caller's supplementary groups are read only where the pipe's owner and bits
    /// make them decide, and never under the lock: a first try that finds it needs them
    /// changes nothing, and the open is tried again with them read.
    public func open(_ inode: InodeNumber, flags: Int32, caller: Caller, waiter: any PipeWaiter,
                     client: ClientIdentity? = nil, creating withCreate: Bool = false) -> Attempt {
        guard let access = AccessMode(openFlags: flags) else { return .done(.failed(.invalidArgument)) }
        var caller = caller
        for _ in 0..<2 {   // groups read once make every later decision answerable
            switch tryOpen(inode, access: access, flags: flags, caller: caller, waiter: waiter, client: client,
                           creating: withCreate) {
            case .attempt(let attempt): return attempt
            case .needsGroups(let group): caller = caller.readingGroups(for: group)
            }
        }
        return .done(.failed(.ioError))
    }

    private enum OpenTry {
        case attempt(Attempt)
        /// The permission depends on membership of this group: read the caller's groups.
        case needsGroups(UInt32)
    }

    private func tryOpen(_ inode: InodeNumber, access: AccessMode, flags: Int32, caller: Caller, waiter: any PipeWaiter,
                         client: ClientIdentity?, creating withCreate: Bool) -> OpenTry {
        let nonblocking = flags & O_NONBLOCK != 0
        var deliveries = Deliveries()
        let attempt: OpenTry = state.withLock { state in
            guard var node = state.nodes[inode] else { return .attempt(.done(.failed(.noSuchFileOrDirectory))) }
            if state.refusingOpens { return .attempt(.done(.failed(.noSuchAddressOrDevice))) }
            let ownership = node.pipe?.ownership ?? defaultOwnership(for: caller)
            let protection = withCreate && node.pipe != nil ? configuration.protection : .off
            let permitted = caller.answer(about: ownership.gid) { caller in
                ownership.permits(caller, access)
                    && !protection.refuses(caller, access, of: ownership, mountOwner: configuration.mountOwner)
            }
            guard let permitted else { return .needsGroups(ownership.gid) }
            guard permitted else { return .attempt(.done(.failed(.permissionDenied))) }
            let creating = node.pipe == nil
            let capacity = configuration.pipe.capacity
            // A new pipe reserves its capacity for its owner, the caller; every open costs
            // its opener `openCost` bytes of memory.
            let limits = configuration.limits
            if creating, let error = state.usage.admits(capacity: capacity + MountLimits.openCost, owner: ownership.uid, limits) {
                return .attempt(.done(.failed(error)))
            }
            if !creating, let error = state.usage.fits(extra: MountLimits.openCost, owner: caller.uid, limits) {
                return .attempt(.done(.failed(error)))
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
                    state.usage.countPipe(1, owner: ownership.uid)
                    state.usage.reserve(capacity, owner: ownership.uid)
                    (node.reserved, node.reservedBy) = (capacity, ownership.uid)
                }
                node.pipe = pipe
                node.opens += 1
                state.nodes[inode] = node
                state.usage.countOpen(1, uid: caller.uid)
                state.handles[handle] = OpenFile(pipe: pipe, inode: inode, access: access,
                                                 client: client ?? ClientIdentity(pid: caller.pid, uid: caller.uid, command: ""),
                                                 since: .now(), hangUpVersion: hangUpVersion, uid: caller.uid)
            }
            return .attempt(attempt)
        }
        deliveries.deliver()
        return attempt
    }

    /// FUSE `release`, and an open whose reply the kernel refused: the open is gone.
    public func release(_ handle: PipeHandle) {
        var deliveries = Deliveries()
        state.withLock { state in
            guard let open = state.removeHandle(handle) else { return }
            open.pipe.close(handle, access: open.access, deliveries: &deliveries)
            state.dropOpen(of: open.inode)
        }
        deliveries.deliver()
    }

    /// Ends a waiting request that was interrupted: it is answered EINTR (or a write with
    /// the count it had taken) and, if it was an open, counts as never made.
    /// Does nothing if the request was answered already.
    public func interrupt(_ waiter: any PipeWaiter, inode: InodeNumber) {
        withdraw(waiter, inode: inode, because: .interrupted)
    }

    /// Ends a waiting open whose `open_timeout` ran out: it fails ETIMEDOUT and leaves no
    /// trace (counts, the POLLHUP rule, a pipe it created). Does nothing if it was answered.
    public func expire(_ waiter: any PipeWaiter, inode: InodeNumber) {
        withdraw(waiter, inode: inode, because: .timedOut)
    }

    /// How long a waiting open of the inode's pipe may wait, in seconds; 0 for ever.
    public func openTimeout(of inode: InodeNumber) -> Double {
        state.withLock { $0.nodes[inode]?.pipe }?.status.config.openTimeout ?? 0
    }

    private func withdraw(_ waiter: any PipeWaiter, inode: InodeNumber, because reason: Pipe.Machine.Withdrawal) {
        var deliveries = Deliveries()
        state.withLock { state in
            guard let pipe = state.nodes[inode]?.pipe else { return }
            if case .open(let open) = pipe.cancel(waiter, because: reason, deliveries: &deliveries) {
                state.removeHandle(open.handle)
                state.dropOpen(of: inode)
            }
        }
        deliveries.deliver()
    }

    /// Shutdown: answers every waiting request (waiting opens fail ENXIO, reads see end
    /// of file, writes return what they wrote or EPIPE) and from then on nothing waits:
    /// reads drain what is buffered and then see end of file, writes fail EPIPE, opens ENXIO.
    public func close() { stop(waitingOnly: false) }

    /// The mount was detached from every path (`fusermount3 -u -z`, `umount -l`) while
    /// processes still hold it: no partner can come through a path any more, so waiting
    /// opens fail ENXIO, as at shutdown, and so does every later open (through a directory
    /// still held). Open pipes go on serving their reads and writes until the last close.
    public func detach() { stop(waitingOnly: true) }

    private func stop(waitingOnly: Bool) {
        var deliveries = Deliveries()
        state.withLock { state in
            state.refusingOpens = true
            for node in state.nodes.values {
                guard let pipe = node.pipe else { continue }
                let abandoned = waitingOnly ? pipe.failWaitingOpens(deliveries: &deliveries)
                                            : pipe.closeForShutdown(deliveries: &deliveries)
                for handle in abandoned {
                    state.removeHandle(handle)
                    state.dropOpen(of: node.inode)
                }
            }
        }
        deliveries.deliver()
    }

    // MARK: Data

    /// FUSE `read`. With no waiter, answers `.mustWait` (changing nothing) where it would wait.
    /// Bytes there now are lent under the pipe's lock to `sink`, or without one to the
    /// waiter's `resume(reading:)` (the answer is then `.answered`); a waiter that waits
    /// gets them later the same way.
    public func read(_ handle: PipeHandle, size: Int, offset: Int64, flags: Int32, waiter: (any PipeWaiter)?,
                     sink: ReadSink?) -> Attempt {
        guard let open = openFile(handle) else { return .done(.failed(.badFileDescriptor)) }
        return open.pipe.read(size: size, offset: offset, nonblocking: flags & O_NONBLOCK != 0, waiter: waiter, handle: handle, sink: sink)
    }

    /// The same, with bytes read now answered as `.done(.data(bytes))`, copied (for tests).
    public func read(_ handle: PipeHandle, size: Int, offset: Int64, flags: Int32, waiter: (any PipeWaiter)?) -> Attempt {
        var bytes: [UInt8] = []
        let attempt = withUnsafeMutablePointer(to: &bytes) { bytes in
            read(handle, size: size, offset: offset, flags: flags, waiter: waiter,
                 sink: ReadSink(context: UnsafeMutableRawPointer(bytes)) { context, data in
                     context?.assumingMemoryBound(to: [UInt8].self).pointee = data.copied()
                 })
        }
        return attempt == .answered ? .done(.data(bytes)) : attempt
    }

    /// FUSE `write`. With no waiter, answers `.mustWait` (changing nothing) where it would wait.
    public func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, flags: Int32,
                      waiter: (any PipeWaiter)?) -> Attempt {
        guard let open = openFile(handle) else { return .done(.failed(.badFileDescriptor)) }
        return open.pipe.write(bytes, offset: offset, nonblocking: flags & O_NONBLOCK != 0, waiter: waiter, handle: handle,
                               uid: open.uid)
    }

    /// FUSE `poll`: the open's readiness; a notifier, if given, is told of the next change.
    public func poll(_ handle: PipeHandle, notifier: (any PollNotifier)?) -> PollEvents? {
        guard let open = openFile(handle) else { return nil }
        return open.pipe.poll(handle, access: open.access, hangUpVersion: open.hangUpVersion, notifier: notifier)
    }

    /// Frees the buffers of pipes left empty and unwritten since the previous call: run
    /// once a second, so that memory follows use without reallocating a streaming buffer.
    public func trimIdleBuffers() {
        for pipe in state.withLock({ $0.nodes.values.compactMap(\.pipe) }) { pipe.trimBuffers() }
    }

    /// Opens that have not been released yet.
    public var openCount: Int { state.withLock { $0.handles.count } }

    /// For tests: every live pipe is consistent and holds exactly the ends of the opens the
    /// registry knows for it (no reader or writer left behind by an open that failed).
    public var isConsistent: Bool {
        state.withLock { state in
            let byInode = Dictionary(grouping: state.handles, by: { $0.value.inode })
            return state.nodes.values.allSatisfy { node in
                let opens = byInode[node.inode] ?? []
                guard let pipe = node.pipe else { return opens.isEmpty && node.opens == 0 }
                let readers = Set(opens.filter { $0.value.access.reads }.map(\.key))
                let writers = opens.filter { $0.value.access.writes }.count
                return node.opens == opens.count && pipe.isConsistent && pipe.holdsEnds(readers: readers, writers: writers)
            }
        }
    }

    /// What a read, write or poll needs of an open: not its client, whose name would be
    /// retained and released on every request.
    private func openFile(_ handle: PipeHandle) -> (pipe: Pipe, access: AccessMode, hangUpVersion: UInt64, uid: UInt32)? {
        state.withLock { state in state.handles[handle].map { ($0.pipe, $0.access, $0.hangUpVersion, $0.uid) } }
    }
}

extension PipeRegistry.State {
    /// Forgets an open's handle and the memory it was counted as.
    @discardableResult
    mutating func removeHandle(_ handle: PipeHandle) -> PipeRegistry.OpenFile? {
        guard let open = handles.removeValue(forKey: handle) else { return nil }
        handles.shrinkIfSparse()
        usage.countOpen(-1, uid: open.uid)
        return open
    }

    /// One open of the inode's pipe is gone; the last one frees the pipe.
    mutating func dropOpen(of inode: InodeNumber) {
        guard var node = nodes[inode] else { return }
        node.opens -= 1
        assert(node.opens >= 0)
        if node.opens == 0 && node.pipe != nil {
            node.pipe = nil
            usage.countPipe(-1, owner: node.reservedBy)
            usage.reserve(-node.reserved, owner: node.reservedBy)
            node.reserved = 0
            if node.lookups > 0 { markIdle(&node) }
        }
        nodes[inode] = node
        removeIfUnused(node)
    }
}
