import Synchronization
import SystemPackage

/// One live named pipe: the seed driver's resource context.
///
/// Created by the first open of a name and dropped by the registry after the last release.
/// All its decisions are here: who may proceed, who waits, who is woken and what a read
/// returns, in `fifo` mode by fifo(7) and pipe(7), in `ring` mode by the seed driver
/// (nothing waits; what does not fit overflows, counted). Operations decide under
/// `state`'s lock and hand the wake-ups they cause to `Deliveries`, which answers them
/// after the lock is released.
///
/// Lock order: the registry's lock before a pipe's, never the reverse.
public final class Pipe: Sendable {
    /// Writes of at most this many bytes are never interleaved with other writers' data.
    public static let atomicWriteLimit = 4096   // PIPE_BUF

    let state: Mutex<PipeState>

    init(config: PipeConfig, ownership: Ownership, budget: ByteBudget) {
        state = Mutex(PipeState(config: config, ownership: ownership, budget: budget))
    }

    /// A pipe's settings and figures at one moment.
    public struct Status: Sendable, Equatable {
        public var config: PipeConfig
        /// Owner, group and permission bits (chmod and chown change them).
        public var ownership: Ownership
        public var buffered: Int
        public var readers: Int
        public var writers: Int
        /// Bytes writers handed over: the sum of the counts write(2) reported.
        public var bytesWritten: UInt64
        public var bytesRead: UInt64
        /// Bytes discarded by overflow (ring mode): new ones dropped or old ones overwritten.
        /// Always `buffered == bytesWritten - bytesRead - dropped`.
        public var dropped: UInt64
        /// Bytes of memory the pipe's buffer (and its message lengths) hold now.
        public var allocated: Int
        public var lastRead: Timestamp
        public var lastWrite: Timestamp
        public var created: Timestamp
    }

    public var status: Status { state.withLock { $0.status } }

    public var ownership: Ownership { state.withLock { $0.ownership } }

    /// chmod and chown: changes the owner, group or permission bits as `caller` may
    /// (see `Ownership.changed`); EPERM otherwise. Returns the new ownership.
    public func changeOwnership(by caller: Caller, permissions: UInt32?, uid: UInt32?, gid: UInt32?) throws(Errno) -> Ownership {
        try state.withLock { (state: inout PipeState) throws(Errno) -> Ownership in
            state.ownership = try state.ownership.changed(by: caller, permissions: permissions, uid: uid, gid: gid)
            return state.ownership
        }
    }

    /// Frees buffer memory that stayed unused since the previous call (see `ByteRing.trim`).
    func trimBuffers() {
        state.withLock { state in
            state.ring.trim()
            state.messages.trim()
        }
    }

    /// What each open of the pipe waits for now, and (broadcast) what each reader lost.
    var openFigures: (waiting: [PipeHandle: PipeClient.Waiting], lost: [PipeHandle: UInt64]) {
        state.withLock { ($0.waitingOpens, $0.cursors.losses(base: $0.base)) }
    }

    /// What a read of up to `max` bytes by `reader` would return, without consuming it
    /// (`user.npfs.peek`; see `PipeState.peek`).
    public func peek(_ max: Int, reader: PipeHandle? = nil) -> [UInt8] { state.withLock { $0.peek(max, reader: reader) } }

    /// For tests: the invariants of the buffer, the message queue and the counters.
    public var isConsistent: Bool { state.withLock { $0.isConsistent } }

    /// One setting of a live pipe.
    public enum Setting: Sendable, Equatable {
        case capacity(Int)
        case mode(PipeConfig.Mode)
        case overflow(PipeConfig.Overflow)
        case framing(PipeConfig.Framing)
        case openTimeout(Double)
        case delivery(PipeConfig.Delivery)
    }

    /// Changes a setting at once and wakes whoever that concerns. Throws EINVAL for a
    /// capacity out of range, EBUSY for a capacity below what is buffered or a waiting
    /// message, or a framing or delivery change while bytes are buffered or writers wait.
    public func apply(_ setting: Setting) throws(Errno) {
        var deliveries = Deliveries()
        let error = apply(setting, deliveries: &deliveries)
        deliveries.deliver()
        if let error { throw error }
    }

    /// The same, for a caller that holds the registry's lock and delivers after releasing it.
    func apply(_ setting: Setting, deliveries: inout Deliveries) -> Errno? {
        state.withLock { $0.apply(setting, deliveries: &deliveries) }
    }

    // MARK: Opening and closing (called by the registry, under its lock)

    /// Counts a new open and decides whether it completes now, fails or waits for a partner.
    func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, waiter: any PipeWaiter,
              deliveries: inout Deliveries) -> (Attempt, hangUpVersion: UInt64) {
        state.withLock { $0.open(handle, access: access, nonblocking: nonblocking, waiter: waiter, deliveries: &deliveries) }
    }

    /// The last descriptor of an open was closed (FUSE `release`).
    func close(_ handle: PipeHandle, access: AccessMode, deliveries: inout Deliveries) {
        state.withLock { $0.close(handle, access: access, deliveries: &deliveries) }
    }

    /// Withdraws an interrupted waiter (or an open whose time ran out). Returns what it was
    /// waiting in, or nil if it was no longer waiting.
    func cancel(_ waiter: any PipeWaiter, because reason: PipeState.Withdrawal, deliveries: inout Deliveries) -> PipeState.Cancelled? {
        state.withLock { $0.cancel(waiter, because: reason, deliveries: &deliveries) }
    }

    /// Answers every waiter and stops all waiting (shutdown); returns the handles of opens that never completed.
    func closeForShutdown(deliveries: inout Deliveries) -> [PipeHandle] {
        state.withLock { $0.closeForShutdown(deliveries: &deliveries) }
    }

    /// Fails the waiting opens (the mount was detached); returns their handles.
    func failWaitingOpens(deliveries: inout Deliveries) -> [PipeHandle] {
        state.withLock { $0.failWaitingOpens(deliveries: &deliveries) }
    }

    // MARK: Data (called with no registry lock held)

    func read(size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?, handle: PipeHandle? = nil,
              sink: (ReadData) -> Void) -> Attempt {
        var deliveries = Deliveries()
        let attempt = withoutActuallyEscaping(sink) { sink in
            let lent = LentSink(sink)
            return state.withLock {
                $0.read(size: size, offset: offset, nonblocking: nonblocking, waiter: waiter, handle: handle, sink: lent.body,
                        deliveries: &deliveries)
            }
        }
        deliveries.deliver()
        return attempt
    }

    func write(_ bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
               handle: PipeHandle? = nil, uid: UInt32 = 0) -> Attempt {
        let borrowed = BorrowedBytes(bytes)
        var deliveries = Deliveries()
        let attempt = state.withLock {
            $0.write(borrowed.bytes, offset: offset, nonblocking: nonblocking, waiter: waiter, handle: handle, uid: uid,
                     deliveries: &deliveries)
        }
        deliveries.deliver()
        return attempt
    }

    func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64, notifier: (any PollNotifier)?) -> PollEvents {
        state.withLock { $0.poll(handle, access: access, hangUpVersion: hangUpVersion, notifier: notifier) }
    }
}

/// A read's sink, lent to the locked state for the duration of one call.
/// Unchecked: it is called only during that call, on the calling thread.
private struct LentSink: @unchecked Sendable {
    let body: (ReadData) -> Void
    init(_ body: @escaping (ReadData) -> Void) { self.body = body }
}

/// A write's payload, lent to the locked state for the duration of one call.
/// Unchecked: the state copies from it and never keeps the pointer.
private struct BorrowedBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}
