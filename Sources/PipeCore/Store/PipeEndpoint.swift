import SystemPackage

/// One live pipe as the registry sees it, wherever its state is kept: the local executor
/// (`LocalPipe`), or a store shared by several hosts. Every call decides under the pipe's
/// own lock and answers the requests it wakes after releasing it; the registry never calls
/// one while holding its own lock.
package protocol PipeEndpoint: AnyObject, Sendable {
    /// A new open (`handle`), as `caller` may make it: EACCES if the pipe's bits refuse
    /// `access`, or `protection` refuses an O_CREAT open of this live pipe (pass `.off`
    /// otherwise). It completes now, fails, or waits for its partner as `waiter`.
    func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, caller: Caller, protection: PipeProtection,
              mountOwner: UInt32, waiter: any PipeWaiter) -> OpenAnswer
    /// The last descriptor of an open was closed (FUSE `release`).
    func close(_ handle: PipeHandle, access: AccessMode)
    /// A read; bytes there now go to `sink` or, without one, to `waiter`'s `resume(reading:)`.
    /// With no waiter, `.mustWait` where it would wait (nothing changed).
    func read(_ handle: PipeHandle, size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
              sink: ReadSink?) -> ReadResult
    /// A write; one that waits keeps what it has not handed over, counted for `uid`.
    /// With no waiter, `.mustWait` where it would wait (nothing changed).
    func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool,
               waiter: (any PipeWaiter)?, uid: UInt32) -> WriteResult
    /// The open's readiness now, or (where that takes a round trip) later through `replier`;
    /// with no replier, `.mustAsk` there. A notifier, if given, is told of the next change.
    func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64, notifier: (any PollNotifier)?,
              replier: (any PollReplier)?) -> PollResult
    /// Withdraws a waiting request and answers it. `beforeAnswering` is told what it was
    /// waiting in before the answer goes out (the registry forgets a withdrawn open there,
    /// so that its client never sees the pipe it leaves); not told if it no longer waits,
    /// nor by an endpoint that answers later (its store undoes a failed open itself).
    func cancel(_ waiter: any PipeWaiter, because reason: Withdrawal, beforeAnswering: (CancelledWait) -> Void)
    /// Shutdown (every wait answered, nothing waits from now on) or, `waitingOnly`, the
    /// mount detached (waiting opens fail ENXIO, and later ones): the opens that never completed.
    func stop(waitingOnly: Bool) -> [PipeHandle]

    /// Changes a setting at once (see `PipeSetting`).
    func apply(_ setting: PipeSetting) throws(Errno)
    var ownership: Ownership { get }
    /// `rm`: persisted no more (see `PipeMachine.unpersist`).
    func unpersist(by caller: Caller) throws(Errno)
    /// chmod and chown as `caller` may (see `Ownership.changed`); the new ownership.
    func changeOwnership(by caller: Caller, permissions: UInt32?, uid: UInt32?, gid: UInt32?) throws(Errno) -> Ownership
    /// Settings and figures now.
    var status: PipeStatus { get }
    /// What a read of up to `max` bytes by `reader` would return, left in place.
    func peek(_ max: Int, reader: PipeHandle?) -> [UInt8]
    /// What each open waits for now, and (broadcast) what each reader lost.
    var openFigures: (waiting: [PipeHandle: PipeClient.Waiting], lost: [PipeHandle: UInt64]) { get }
    /// Frees buffer memory unused since the previous call.
    func trimBuffers()

    /// For tests: internally consistent, counting exactly these readers and writers.
    func holdsExactly(readers: Set<PipeHandle>, writers: Int) -> Bool
    /// Reads the pipe's state where it is kept, for a call on a host that has no open of
    /// it (a shared store's pipe, attached for the call): ENOENT if it is gone, EIO if the
    /// store cannot be reached. A local pipe is always up to date.
    func load() throws(Errno)
}

extension PipeEndpoint {
    package func load() throws(Errno) {}

    package func cancel(_ waiter: any PipeWaiter, because reason: Withdrawal) {
        cancel(waiter, because: reason, beforeAnswering: { _ in })
    }
}

/// What an open decided.
package enum OpenAnswer: Sendable, Equatable {
    /// Its answer, and its POLLHUP mark (see `PipeMachine.open`).
    case result(OpenResult, hangUpVersion: UInt64)
    /// Whether it may open depends on the caller's membership of this group: read its
    /// groups (never with a lock held) and try again. Nothing changed.
    case needsGroups(UInt32)
}

/// Why a waiting request is withdrawn: a signal (EINTR, as pipe(7)), or an open's timeout
/// (ETIMEDOUT, and the open leaves no trace, not even in the open counters).
package enum Withdrawal: Sendable { case interrupted, timedOut }

/// What a withdrawn request was waiting in.
package enum CancelledWait: Sendable, Equatable { case open(PipeHandle), read, write }
