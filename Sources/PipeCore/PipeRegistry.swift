import Glibc
import Synchronization
import SystemPackage

/// Every name the kernel knows of and every live pipe: the seed driver's device extension.
///
/// A name gets an inode on its first lookup and keeps it until the kernel forgets it
/// (`NameTable`). Its pipe is attached from the store by the first open and detached when
/// the last open is released (or a waiting open is interrupted), discarding unread data as
/// a kernel FIFO does. Each open gets a `PipeHandle` that leads straight to its pipe
/// (`OpenTable`): reads and writes do no name lookup.
///
/// The registry never calls a pipe while holding its own lock: an open is first counted
/// (which keeps its pipe attached) and given its handle, then decided by the pipe, and
/// undone if it failed.
package final class PipeRegistry: Sendable {
    package struct Configuration: Sendable {
        package var pipe: PipeConfig
        /// Match names with ASCII letters folded, as the seed driver did.
        package var ignoreCase: Bool
        /// A new pipe's permission bits (`pipe_mode`); its owner is the process that opened it.
        package var pipeMode: UInt32
        package var limits: MountLimits
        /// Who may open another user's live pipe with O_CREAT (`protected_pipes`).
        package var protection: PipeProtection
        /// The uid that mounted: its pipes are never protected against.
        package var mountOwner: UInt32

        package init(pipe: PipeConfig, ignoreCase: Bool = false, pipeMode: UInt32 = 0o666, limits: MountLimits = .unlimited,
                    protection: PipeProtection = .off, mountOwner: UInt32 = 0) {
            self.pipe = pipe
            self.ignoreCase = ignoreCase
            self.pipeMode = pipeMode & 0o7777
            self.limits = limits
            self.protection = protection
            self.mountOwner = mountOwner
        }
    }


    struct State {
        var names = NameTable()
        var opens = OpenTable()
        /// Shutting down, or the mount detached: opens fail ENXIO.
        var refusingOpens = false
        var usage = MountUsage()
    }

    package let configuration: Configuration
    let state = Mutex(State())
    /// Where the pipes live.
    package let store: any PipeStore
    /// Changes of owners and capacities, one at a time: each moves reservations that the
    /// pipe's answer decides.
    let reservations = Mutex(())

    package init(configuration: Configuration, store: (any PipeStore)? = nil) {
        self.configuration = configuration
        self.store = store ?? LocalPipeStore(limits: configuration.limits)
        self.store.report(to: self)
    }

    /// What the mount uses now against `configuration.limits`.
    package var usage: MountUsage { usage(of: 0) }

    /// The same, with `userWaitingBytes` that of `user`.
    package func usage(of user: UInt32 = 0) -> MountUsage {
        let (counted, names) = state.withLock { ($0.usage, $0.names.nodes.count) }
        var usage = counted
        usage.idleNames = names - usage.pipes
        (usage.waitingBytes, usage.userWaitingBytes) = store.waitingBytes(of: user)
        usage.allocatedBytes = store.list().reduce(0) { $0 + $1.status.allocated }
        return usage
    }

    // MARK: Open and release

    /// FUSE `open`. The waiter is resumed with `.opened` once the pipe's other end appears;
    /// a `.done` answer is immediate. Attaches the pipe on the first open of a name, owned
    /// by `caller`; EACCES if the pipe's permission bits do not let `caller` open it so, or
    /// if the open was made with O_CREAT (`creating`) and `protection` refuses it.
    /// `client` names the process for `npfs status --clients` (by default, the caller's ids).
    ///
    /// The caller's supplementary groups are read only where the pipe's owner and bits
    /// make them decide, and never under a lock: a first try that finds it needs them
    /// changes nothing, and the open is tried again with them read.
    package func open(_ inode: InodeNumber, flags: Int32, caller: Caller, waiter: any PipeWaiter,
                     client: ClientIdentity? = nil, creating withCreate: Bool = false) -> OpenResult {
        guard let access = AccessMode(openFlags: flags) else { return .done(.failed(.invalidArgument)) }
        var caller = caller
        for _ in 0..<2 {   // groups read once make every later decision answerable
            let admission: Admission
            switch state.withLock({ admit(inode, access: access, caller: caller, client: client, creating: withCreate, &$0) }) {
            case .failure(let error): return .done(.failed(error))
            case .success(let admitted): admission = admitted
            }
            let answer = admission.pipe.open(admission.handle, access: access, nonblocking: flags & O_NONBLOCK != 0, caller: caller,
                                             protection: admission.protection, mountOwner: configuration.mountOwner, waiter: waiter)
            switch answer {
            case .result(.done(.failed(let error)), _):
                state.withLock { $0.undo(admission.handle, store: store) }
                return .done(.failed(error))
            case .result(let attempt, let hangUpVersion):
                if hangUpVersion != 0 { state.withLock { $0.opens.setHangUpVersion(hangUpVersion, of: admission.handle) } }
                return attempt
            case .needsGroups(let group):
                state.withLock { $0.undo(admission.handle, store: store) }
                caller = caller.readingGroups(for: group)
            }
        }
        return .done(.failed(.ioError))
    }

    /// An open counted before its pipe decides: the pipe, the open's handle, and the
    /// O_CREAT rule that applies to it.
    private struct Admission {
        let pipe: any PipeEndpoint
        let handle: PipeHandle
        let protection: PipeProtection
    }

    /// Counts an open of `inode` against the limits, attaching its pipe if the name has
    /// none (owned by `caller`, its capacity reserved for it), and gives it its handle.
    private func admit(_ inode: InodeNumber, access: AccessMode, caller: Caller, client: ClientIdentity?, creating withCreate: Bool,
                       _ state: inout State) -> Result<Admission, Errno> {
        guard var node = state.names.nodes[inode] else { return .failure(.noSuchFileOrDirectory) }
        if state.refusingOpens { return .failure(.noSuchAddressOrDevice) }
        let limits = configuration.limits
        let pipe: any PipeEndpoint
        if let live = node.pipe {
            // Every open costs its opener `openCost` bytes of memory.
            if let error = state.usage.fits(extra: MountLimits.openCost, owner: caller.uid, limits) { return .failure(error) }
            pipe = live
        } else {
            // A new pipe reserves its capacity for its owner, the caller.
            let ownership = defaultOwnership(for: caller)
            let capacity = configuration.pipe.capacity
            if let error = state.usage.admits(capacity: capacity + MountLimits.openCost, owner: ownership.uid, limits) {
                return .failure(error)
            }
            pipe = store.attach(node.key, config: configuration.pipe, ownership: ownership)
            state.names.attach(pipe, to: &node)
            // -o persist: kept attached with no open (a local store's; see `pin`).
            if configuration.pipe.persist && !store.keepsPersistedPipes { (node.pinned, node.opens) = (true, 1) }
            state.usage.countPipe(1, owner: ownership.uid)
            state.usage.reserve(capacity, owner: ownership.uid)
            (node.reserved, node.reservedBy) = (capacity, ownership.uid)
        }
        // O_CREAT matters only for another's live pipe (protected_pipes).
        let protection = withCreate && node.opens > 0 ? configuration.protection : .off
        node.opens += 1
        state.names.nodes[inode] = node
        state.usage.countOpen(1, uid: caller.uid)
        let handle = state.opens.add(OpenTable.OpenFile(
            pipe: pipe, inode: inode, access: access, client: client ?? ClientIdentity(pid: caller.pid, uid: caller.uid, command: ""),
            since: .now(), hangUpVersion: 0, uid: caller.uid))
        return .success(Admission(pipe: pipe, handle: handle, protection: protection))
    }

    /// FUSE `release`, and an open whose reply the kernel refused: the open is gone.
    package func release(_ handle: PipeHandle) {
        guard let open = state.withLock({ $0.removeOpen(handle) }) else { return }
        open.pipe.close(handle, access: open.access)
        state.withLock { $0.dropOpen(of: open.inode, store: store) }
    }

    /// Ends a waiting request that was interrupted: it is answered EINTR (or a write with
    /// the count it had taken) and, if it was an open, counts as never made.
    /// Does nothing if the request was answered already.
    package func interrupt(_ waiter: any PipeWaiter, inode: InodeNumber) {
        withdraw(waiter, inode: inode, because: .interrupted)
    }

    /// Ends a waiting open whose `open_timeout` ran out: it fails ETIMEDOUT and leaves no
    /// trace (counts, the POLLHUP rule, a pipe it created). Does nothing if it was answered.
    package func expire(_ waiter: any PipeWaiter, inode: InodeNumber) {
        withdraw(waiter, inode: inode, because: .timedOut)
    }

    /// How long the adapter lets a waiting open of the inode's pipe wait, in seconds; 0 for
    /// ever, or for a store whose endpoints time their opens themselves (`PipeStore.timesOpens`).
    package func openTimeout(of inode: InodeNumber) -> Double {
        // A store whose endpoints time their opens themselves knows the pipe's own setting
        // only after the open's step: this host's view could be the mount's default.
        guard !store.timesOpens else { return 0 }
        return state.withLock { $0.names.nodes[inode]?.pipe }?.status.config.openTimeout ?? 0
    }

    private func withdraw(_ waiter: any PipeWaiter, inode: InodeNumber, because reason: Withdrawal) {
        // A waiting open keeps its pipe attached: if the waiter still waits, this is its pipe.
        guard let pipe = state.withLock({ $0.names.nodes[inode]?.pipe }) else { return }
        // A withdrawn open is forgotten before its answer goes out: its client, told
        // ETIMEDOUT or EINTR, must not find the pipe it made still listed.
        pipe.cancel(waiter, because: reason) { cancelled in
            if case .open(let handle) = cancelled { state.withLock { $0.undo(handle, store: store) } }
        }
    }

    /// Shutdown: answers every waiting request (waiting opens fail ENXIO, reads see end
    /// of file, writes return what they wrote or EPIPE) and from then on nothing waits:
    /// reads drain what is buffered and then see end of file, writes fail EPIPE, opens ENXIO.
    package func close() { stop(waitingOnly: false) }

    /// The mount was detached from every path (`fusermount3 -u -z`, `umount -l`) while
    /// processes still hold it: no partner can come through a path any more, so waiting
    /// opens fail ENXIO, as at shutdown, and so does every later open (through a directory
    /// still held). Open pipes go on serving their reads and writes until the last close.
    package func detach() { stop(waitingOnly: true) }

    private func stop(waitingOnly: Bool) {
        let pipes = state.withLock { state in
            state.refusingOpens = true
            return state.names.nodes.values.compactMap(\.pipe)
        }
        for pipe in pipes {
            let abandoned = pipe.stop(waitingOnly: waitingOnly)
            guard !abandoned.isEmpty else { continue }
            state.withLock { state in
                for handle in abandoned { state.undo(handle, store: store) }
            }
        }
    }

    // MARK: Data

    /// FUSE `read`. With no waiter, answers `.mustWait` (changing nothing) where it would wait.
    /// Bytes there now are lent under the pipe's lock to `sink`, or without one to the
    /// waiter's `resume(reading:)` (the answer is then `.answered`); a waiter that waits
    /// gets them later the same way.
    package func read(_ handle: PipeHandle, size: Int, offset: Int64, flags: Int32, waiter: (any PipeWaiter)?,
                     sink: ReadSink?) -> ReadResult {
        guard let open = openFile(handle) else { return .done(.failed(.badFileDescriptor)) }
        return open.pipe.read(handle, size: size, offset: offset, nonblocking: flags & O_NONBLOCK != 0, waiter: waiter, sink: sink)
    }

    /// The same, with bytes read now answered as `.done(.data(bytes))`, copied (for tests).
    package func read(_ handle: PipeHandle, size: Int, offset: Int64, flags: Int32, waiter: (any PipeWaiter)?) -> ReadResult {
        var bytes: [UInt8] = []
        let attempt = withUnsafeMutablePointer(to: &bytes) { bytes in
            read(handle, size: size, offset: offset, flags: flags, waiter: waiter,
                 sink: ReadSink(context: UnsafeMutableRawPointer(bytes)) { context, data in
                     context?.assumingMemoryBound(to: [UInt8].self).pointee = ReadSink.data(data).copied()
                 })
        }
        return attempt == .answered ? .done(.data(bytes)) : attempt
    }

    /// FUSE `write`. With no waiter, answers `.mustWait` (changing nothing) where it would wait.
    package func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, flags: Int32,
                      waiter: (any PipeWaiter)?) -> WriteResult {
        guard let open = openFile(handle) else { return .done(.failed(.badFileDescriptor)) }
        return open.pipe.write(handle, bytes: bytes, offset: offset, nonblocking: flags & O_NONBLOCK != 0, waiter: waiter,
                               uid: open.uid)
    }

    /// FUSE `poll`: the open's readiness, now or through `replier` (see `PipeEndpoint.poll`);
    /// a notifier, if given, is told of the next change. Nil for an unknown handle.
    package func poll(_ handle: PipeHandle, notifier: (any PollNotifier)?, replier: (any PollReplier)?) -> PollResult? {
        guard let open = openFile(handle) else { return nil }
        return open.pipe.poll(handle, access: open.access, hangUpVersion: open.hangUpVersion, notifier: notifier, replier: replier)
    }

    /// Frees the buffers of pipes left empty and unwritten since the previous call: run
    /// once a second, so that memory follows use without reallocating a streaming buffer.
    package func trimIdleBuffers() {
        for pipe in store.list() { pipe.trimBuffers() }
    }

    /// Opens that have not been released yet.
    package var openCount: Int { state.withLock { $0.opens.count } }

    /// For tests: every live pipe is consistent and holds exactly the ends of the opens the
    /// registry knows for it (no reader or writer left behind by an open that failed), and
    /// the store holds exactly the live pipes.
    package var isConsistent: Bool {
        let live = state.withLock { state in
            let byInode = Dictionary(grouping: state.opens.handles, by: { $0.value.inode })
            return state.names.nodes.values.map { node in
                let opens = byInode[node.inode] ?? []
                let readers = Set(opens.filter { $0.value.access.reads }.map(\.key))
                let writers = opens.filter { $0.value.access.writes }.count
                return (node.pipe, node.opens == opens.count + (node.pinned ? 1 : 0) && (node.pipe != nil || opens.isEmpty), readers, writers)
            }
        }
        let attached = store.list()
        return attached.count == live.filter({ $0.0 != nil }).count && live.allSatisfy { pipe, counted, readers, writers in
            counted && (pipe.map { pipe in
                attached.contains { $0 === pipe } && pipe.holdsExactly(readers: readers, writers: writers)
            } ?? true)
        }
    }

    /// What a read, write or poll needs of an open (see `OpenTable.route`).
    @inline(__always)
    private func openFile(_ handle: PipeHandle) -> OpenTable.Route? {
        state.withLock { $0.opens.route(handle) }
    }
}

extension PipeRegistry: OpenOutcomes {
    package func openCompleted(_ handle: PipeHandle, hangUpVersion: UInt64) {
        if hangUpVersion != 0 { state.withLock { $0.opens.setHangUpVersion(hangUpVersion, of: handle) } }
    }

    package func openFailed(_ handle: PipeHandle) {
        state.withLock { $0.undo(handle, store: store) }
    }

    package func client(of handle: PipeHandle) -> (ClientIdentity, Timestamp)? {
        state.withLock { $0.opens.open(handle).map { ($0.client, $0.since) } }
    }
}

extension PipeRegistry.State {
    /// Forgets an open's handle and the memory it was counted as.
    mutating func removeOpen(_ handle: PipeHandle) -> OpenTable.OpenFile? {
        guard let open = opens.remove(handle) else { return nil }
        usage.countOpen(-1, uid: open.uid)
        return open
    }

    /// An open that never completed (it failed, or was withdrawn) is gone, as if never made.
    mutating func undo(_ handle: PipeHandle, store: any PipeStore) {
        guard let open = removeOpen(handle) else { return }
        dropOpen(of: open.inode, store: store)
    }

    /// A shared store's pipe that lives on other hosts only, attached to the inode for one
    /// call like an open (owned by nobody until its state is read): the caller drops it
    /// with `dropOpen`. Nil for an unknown inode.
    mutating func attachForCall(_ inode: InodeNumber, store: any PipeStore) -> (any PipeEndpoint)? {
        guard var node = names.nodes[inode] else { return nil }
        if node.pipe == nil {
            names.attach(store.attach(node.key, config: .defaults, ownership: Ownership(uid: 0, gid: 0, permissions: 0)), to: &node)
            usage.countPipe(1, owner: 0)
            (node.reserved, node.reservedBy) = (0, 0)
        }
        node.opens += 1
        names.nodes[inode] = node
        return node.pipe
    }

    /// A local store's pipe persisted (`on`) stays attached with no open; no longer
    /// persisted, it goes once no open is left.
    mutating func pin(_ inode: InodeNumber, _ on: Bool, store: any PipeStore) {
        guard !store.keepsPersistedPipes, var node = names.nodes[inode], node.pipe != nil, node.pinned != on else { return }
        node.pinned = on
        if on { node.opens += 1 }
        names.nodes[inode] = node
        if !on { dropOpen(of: inode, store: store) }
    }

    /// One open of the inode's pipe is gone; the last one detaches the pipe.
    mutating func dropOpen(of inode: InodeNumber, store: any PipeStore) {
        guard var node = names.nodes[inode] else { return }
        node.opens -= 1
        assert(node.opens >= 0)
        if node.opens == 0 && node.pipe != nil {
            node.pipe = nil
            store.detach(node.key)
            usage.countPipe(-1, owner: node.reservedBy)
            usage.reserve(-node.reserved, owner: node.reservedBy)
            node.reserved = 0
            if node.lookups > 0 { names.markIdle(&node) }
        }
        names.nodes[inode] = node
        names.removeIfUnused(node)
    }
}
