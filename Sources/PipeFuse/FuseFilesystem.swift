import CFuse3
import Dispatch
import Glibc
import PipeCore
import Synchronization
import SystemPackage

/// The adapter between FUSE requests and the pipe core.
///
/// Each handler translates one low-level operation into a registry call and its answer
/// into one reply. Nothing here decides pipe semantics, and no handler ever blocks: a
/// request that must wait becomes a `FuseWaiter` its pipe resumes later.
package final class FuseFilesystem: Sendable {
    package let registry: PipeRegistry
    /// How long the kernel may cache a name's entry: every valid name exists and keeps its
    /// inode while the kernel holds it, so any time is right (an hour: a `stat` of a name
    /// looked up a while ago costs no second round trip; idle names are handed back by
    /// `forgetIdleNames`), except with ignore_case, where each open's own lookup must be
    /// seen, since `ls` shows the spelling of the open that created a pipe.
    let entryTimeout: Double

    private let owner: (uid: uid_t, gid: gid_t)
    private let mounted = Timestamp.now()
    /// The requests that wait, their interrupts and timers.
    let waiters: FuseWaiters
    /// `ls` snapshots: the live pipes when the directory was opened, by directory handle.
    private let listings = Mutex<(next: UInt64, open: [UInt64: [(inode: UInt64, name: [UInt8], isDirectory: Bool)]])>((1, [:]))

    /// The largest read request (`-o max_read`), or 0 for the kernel's default.
    let maxRead: UInt32
    /// Asks the kernel to forget names when too many are held idle.
    let invalidator = EntryInvalidator()
    /// How requests travel (see `Transport`).
    let transport: Transport

    package init(registry: PipeRegistry, maxRead: UInt32 = 0, transport: Transport = Transport()) {
        self.registry = registry
        self.transport = transport
        self.maxRead = maxRead
        self.owner = (getuid(), getgid())
        self.entryTimeout = registry.configuration.ignoreCase ? 0 : 3600
        self.waiters = FuseWaiters(registry: registry)
    }

    // MARK: Names and attributes

    /// `lookup`: any valid name under the root is a pipe. Replies entry, ENOENT or ENAMETOOLONG.
    func lookup(_ request: consuming FuseRequest, parent: InodeNumber, name: [UInt8]) {
        guard parent == .root else { return request.fail(.noSuchFileOrDirectory) }
        let pipeName: PipeName
        do { pipeName = try PipeName(bytes: name) } catch { return request.fail(error) }
        let inode = registry.lookup(pipeName)
        request.entry(inode, attributes: attributes(of: inode, for: request.caller) ?? stat(), entryTimeout: entryTimeout)
        let stale = registry.namesToForget()
        if !stale.isEmpty { invalidator.forget(stale) }
    }

    /// `unlink`: removes a persisted pipe (see `PipeRegistry.remove`); EPERM for any other name.
    func unlink(_ request: consuming FuseRequest, parent: InodeNumber, name: [UInt8]) {
        guard parent == .root, let pipeName = try? PipeName(bytes: name) else { return request.fail(.notPermitted) }
        guard registry.store.settingsWait else { return unlinkNow(request, name: pipeName) }
        offFuse(request) { self.unlinkNow($0, name: pipeName) }
    }

    private func unlinkNow(_ request: consuming FuseRequest, name: PipeName) {
        do throws(Errno) {
            try registry.remove(name, caller: request.caller)
            request.succeed()
        } catch {
            request.fail(error)
        }
    }

    /// `forget` and `forget_multi`: the kernel dropped references to inodes. Replies none.
    func forget(_ request: consuming FuseRequest, inodes: [(inode: InodeNumber, count: UInt64)]) {
        for (inode, count) in inodes { registry.forget(inode, count: count) }
        request.noReply()
    }

    /// `getattr`. Replies attributes or ENOENT.
    func getattr(_ request: consuming FuseRequest, inode: InodeNumber) {
        guard let attributes = attributes(of: inode, for: request.caller) else {
            return request.fail(.noSuchFileOrDirectory)
        }
        request.attributes(attributes, timeout: attributeTimeout(inode))
    }

    /// How long the kernel may keep an inode's attributes: none for a pipe (its size and
    /// times change with every write, its mode with chmod), a second for the mount root,
    /// whose attributes never change. The root's are checked on every path walked through
    /// it, so caching them halves the requests of `ls -l`; one second keeps a `stat` of
    /// the mount point answering ENOTCONN soon after the daemon dies.
    func attributeTimeout(_ inode: InodeNumber) -> Double { inode == .root ? 1 : 0 }

    /// `setattr`: chmod and chown of a live pipe by its owner or root (ENOENT for a name
    /// that is not live, EPERM for the root and where chmod(2)/chown(2) refuse); times are
    /// accepted (touch); `truncate` to 0 is a no-op as O_TRUNC is on a FIFO, other sizes
    /// fail EINVAL. Replies the attributes after the change.
    func setattr(_ request: consuming FuseRequest, inode: InodeNumber, changes: AttributeChanges) {
        let owners = changes.permissions != nil || changes.uid != nil || changes.gid != nil
        guard owners && registry.store.settingsWait else { return setattrNow(request, inode: inode, changes: changes) }
        offFuse(request) { self.setattrNow($0, inode: inode, changes: changes) }
    }

    private func setattrNow(_ request: consuming FuseRequest, inode: InodeNumber, changes: AttributeChanges) {
        let caller = request.caller
        if let size = changes.size, size != 0 || inode == .root { return request.fail(.invalidArgument) }
        if changes.permissions != nil || changes.uid != nil || changes.gid != nil {
            guard inode != .root else { return request.fail(.notPermitted) }
            do {
                _ = try registry.changeOwnership(of: inode, by: caller, permissions: changes.permissions,
                                                 uid: changes.uid, gid: changes.gid)
            } catch {
                return request.fail(error)
            }
        }
        guard let attributes = attributes(of: inode, for: caller) else { return request.fail(.noSuchFileOrDirectory) }
        request.attributes(attributes, timeout: attributeTimeout(inode))
    }

    /// What `stat` shows `caller`: a live pipe's owner and mode, or for a name that is not
    /// live what `caller` would get by opening it. The root is writable by all: anyone
    /// allowed on the mount may create pipes, and set their own through its attributes.
    func attributes(of inode: InodeNumber, for caller: Caller) -> stat? {
        var st = stat()
        st.st_ino = ino_t(inode.rawValue)
        st.st_uid = owner.uid
        st.st_gid = owner.gid
        st.st_blksize = 4096
        if inode == .root {
            st.st_mode = npfs_s_ifdir() | 0o777
            st.st_nlink = 2
            setTimes(&st, access: mounted, modify: mounted, change: mounted)
            return st
        }
        guard let (_, status) = registry.node(inode) else { return nil }
        let ownership = status?.ownership ?? registry.defaultOwnership(for: caller)
        st.st_mode = npfs_s_ifreg() | mode_t(ownership.permissions)
        st.st_uid = uid_t(ownership.uid)
        st.st_gid = gid_t(ownership.gid)
        st.st_nlink = 1
        st.st_size = Self.reportedSize(bytesWritten: status?.bytesWritten ?? 0)
        st.st_blocks = 0   // the buffer is the daemon's memory, not the disk's
        if let status {
            setTimes(&st, access: status.lastRead, modify: status.lastWrite, change: status.created)
        } else {
            setTimes(&st, access: mounted, modify: mounted, change: mounted)
        }
        return st
    }

    /// The size the kernel sees: 2 GiB plus the bytes written to the pipe so far, rounded
    /// up to a whole page. The bytes buffered are in `user.npfs.buffered` and `npfs status`.
    /// Why this number:
    /// - The kernel runs a write with the file's inode lock shared, so that a writer that
    ///   waits in npfs does not hold up the next one, only while the write ends below the
    ///   size it knows; 2 GiB is more than one write(2) can carry (MAX_RW_COUNT).
    /// - It never shrinks while the pipe is live and grows with the writes, so `tail -f`
    ///   (which also sees the mtime move) reads each writer's data and never decides the
    ///   file was truncated.
    /// - A whole number of pages: `wc -c` believes a size that is not (and reports it
    ///   without reading), but reads a file whose size is, as it must for /proc files.
    static func reportedSize(bytesWritten: UInt64) -> off_t {
        let base: UInt64 = 1 << 31, page: UInt64 = 4096
        let written = min(bytesWritten, UInt64(Int64.max) - base - page)
        return off_t(base + (written + page - 1) / page * page)
    }

    private func setTimes(_ st: inout stat, access: Timestamp, modify: Timestamp, change: Timestamp) {
        st.st_atim = timespec(tv_sec: access.seconds, tv_nsec: access.nanoseconds)
        st.st_mtim = timespec(tv_sec: modify.seconds, tv_nsec: modify.nanoseconds)
        st.st_ctim = timespec(tv_sec: change.seconds, tv_nsec: change.nanoseconds)
    }

    // MARK: Directory

    /// `opendir`: snapshots `.`, `..` and the live pipes so that `ls` pages through one listing.
    func opendir(_ request: consuming FuseRequest, inode: InodeNumber) {
        guard inode == .root else { return request.fail(.notDirectory) }
        let root = InodeNumber.root.rawValue
        let entries = [(root, Array(".".utf8), true), (root, Array("..".utf8), true)]
            + registry.livePipes().map { ($0.inode.rawValue, $0.name.bytes, false) }
        let handle = listings.withLock { listings in
            let handle = listings.next
            listings.next += 1
            listings.open[handle] = entries
            return handle
        }
        request.openedDirectory(handle)
    }

    /// `readdir`: entries from `offset` on. Replies a buffer (empty at the end) or EBADF.
    func readdir(_ request: consuming FuseRequest, handle: UInt64, size: Int, offset: Int) {
        guard let entries = listings.withLock({ $0.open[handle] }) else { return request.fail(.badFileDescriptor) }
        let start = min(max(offset, 0), entries.count)
        request.directory(entries[start...], bufferSize: size, firstOffset: start)
    }

    /// `releasedir`. Replies success.
    func releasedir(_ request: consuming FuseRequest, handle: UInt64) {
        listings.withLock { listings in
            listings.open[handle] = nil
            listings.open.shrinkIfSparse()
        }
        request.succeed()
    }

    // MARK: Open, read, write, poll, release

    /// `open`: may wait for the other end (a deferred reply), for at most the pipe's
    /// `open_timeout`. Replies open, ENXIO, EINTR, ETIMEDOUT or EISDIR.
    func open(_ request: consuming FuseRequest, inode: InodeNumber, flags: Int32) {
        guard inode != .root else { return request.fail(.isDirectory) }
        let caller = request.caller
        // Only protected_pipes needs to know of O_CREAT, read from /proc before any lock.
        let creating = registry.configuration.protection != .off && OpenIntent.usedCreate(thread: caller.pid, flags: flags)
        let client = ClientIdentity.of(caller)
        let waiter = waiters.make(request, inode: inode)
        switch registry.open(inode, flags: flags, caller: caller, waiter: waiter, client: client, creating: creating) {
        case .done(let reply):
            waiter.resume(PipeReply(reply))
        case .queued:
            waiters.expire(waiter, after: registry.openTimeout(of: inode))
        }
    }

    /// `read`: data, end of file (empty), EAGAIN, or a deferred reply while a writer may still write.
    /// Data is sent straight from the pipe's buffer (and waiting writers' requests), uncopied.
    func read(_ request: consuming FuseRequest, inode: InodeNumber, handle: PipeHandle, size: Int, offset: Int64, flags: Int32) {
        // First without a waiter: the common case answers at once and costs no interrupt registration.
        request.read({ sink in registry.read(handle, size: size, offset: offset, flags: flags, waiter: nil, sink: sink) }) { request, result in
            switch result {
            case .done(let reply):
                request.send(reply)
            case .mustWait, .queued, .answered:
                // Bytes lent now go to the waiter (`resume(reading:)`); .queued and .answered: the
                // pipe holds or answered it; .mustWait cannot come with a waiter.
                let waiter = waiters.make(request, inode: inode)
                if case .done(let reply) = registry.read(handle, size: size, offset: offset, flags: flags, waiter: waiter, sink: nil) {
                    waiter.resume(PipeReply(reply))
                }
            }
        }
    }

    /// `write`: the count taken, EPIPE, EAGAIN, EMSGSIZE, or a deferred reply until there is room.
    /// `bytes` is valid only during this call: the pipe copies what it keeps.
    func write(_ request: consuming FuseRequest, inode: InodeNumber, handle: PipeHandle, bytes: UnsafeRawBufferPointer,
               offset: Int64, flags: Int32) {
        // First without a waiter: the common case answers at once and costs no interrupt registration.
        switch registry.write(handle, bytes: bytes, offset: offset, flags: flags, waiter: nil) {
        case .done(let reply):
            request.send(reply)
        case .mustWait, .queued:
            let waiter = waiters.make(request, inode: inode)
            if case .done(let reply) = registry.write(handle, bytes: bytes, offset: offset, flags: flags, waiter: waiter) {
                waiter.resume(PipeReply(reply))
            }
        }
    }

    /// `poll`: the open's readiness (a cluster's pipe: a deferred reply, as PostgreSQL has
    /// it); a poll handle, if given, is notified on the next change.
    func poll(_ request: consuming FuseRequest, handle: PipeHandle, pollHandle: OpaquePointer?) {
        let notifier = pollHandle.map(FusePollNotifier.init)
        switch registry.poll(handle, notifier: notifier, replier: nil) {
        case .none: request.fail(.badFileDescriptor)
        case .events(let events): request.poll(events)
        case .mustAsk, .queued:
            switch registry.poll(handle, notifier: notifier, replier: FusePollReplier(request)) {
            case .none, .mustAsk, .queued: break   // the replier answers (EBADF if never asked)
            case .events: assertionFailure("a pipe answered a poll at once after asking for a replier")
            }
        }
    }

    /// `release`: the last descriptor of an open closed. Replies success.
    func release(_ request: consuming FuseRequest, handle: PipeHandle) {
        registry.release(handle)
        request.succeed()
    }

    /// How long a name may stay idle (looked up, no live pipe) before the kernel is asked
    /// to forget it.
    static let idleNameLifetime = 5.0

    /// Housekeeping, once a second: idle buffers are freed and idle names handed back.
    func everySecond() {
        registry.trimIdleBuffers()
        forgetIdleNames()
    }

    /// Asks the kernel to forget names idle for `idleNameLifetime` seconds.
    func forgetIdleNames() {
        let stale = registry.namesToForget(idleFor: Self.idleNameLifetime)
        if !stale.isEmpty { invalidator.forget(stale) }
    }

    /// Shutdown: answers every waiting request (and EIO to any no pipe knew any more);
    /// from now on nothing waits.
    package func shutDown() {
        registry.close()
        waiters.abandonAll()
    }
}

/// XATTR_CREATE from <sys/xattr.h>: fail if the attribute exists.
let XATTR_CREATE_FLAG: Int32 = 1

/// What a `setattr` asks to change, as far as npfs cares.
struct AttributeChanges {
    var size: Int64?
    /// chmod: the new permission bits.
    var permissions: UInt32?
    /// chown: the new owner and group.
    var uid: UInt32?
    var gid: UInt32?
}

/// Requests that wait for a store shared with other machines (settings, ownership, peeks
/// of a cluster's pipes) are answered from threads of their own, so that no FUSE thread
/// waits for a round trip elsewhere: the request is handed over, and answered later.
extension FuseFilesystem {
    /// Runs `body` with `request` on the waiting operations' queue.
    func offFuse(_ request: consuming FuseRequest, _ body: @escaping @Sendable (consuming FuseRequest) -> Void) {
        let handed = HandedRequest(request)
        FuseFilesystem.waitingOperations.async {
            guard let request = handed.take() else { return }
            body(request)
        }
    }

    /// One at a time, in the order asked: a setting and the next read of it.
    static let waitingOperations = DispatchQueue(label: "npfs.waiting-operations")
}

/// A request on its way to another thread.
private final class HandedRequest: @unchecked Sendable {
    private let request: Mutex<FuseRequest?>
    init(_ request: consuming FuseRequest) { self.request = Mutex(Optional(request)) }
    func take() -> FuseRequest? { request.withLock { $0.take() } }
}
