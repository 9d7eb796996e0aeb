/// A request that waits: an open for its partner, a read for data, a write for room.
///
/// A local pipe keeps it while its machine holds the wait (by a `WaitID`) and calls
/// `resume` exactly once, always after releasing its locks (bytes read excepted, see
/// `resume(reading:)`). The adapter's implementation holds the FUSE request; tests record
/// the reply.
package protocol PipeWaiter: AnyObject, Sendable {
    /// True once the request was interrupted. Set from any thread; the pipe reads it
    /// under the pipe's lock before queueing, so an interrupt that comes before the
    /// waiter is queued is not lost.
    var isInterrupted: Bool { get }
    func resume(_ reply: PipeReply)
    /// Answers a waiting read with bytes: called under the pipe's lock, with `data` valid
    /// only during the call (the adapter sends it without copying). By default, a copy is
    /// passed to `resume(.data(_:))`.
    func resume(reading data: ReadData)
}

extension PipeWaiter {
    package func resume(reading data: ReadData) { resume(.data(data.copied())) }
}

/// A poll that asked to be told when an open's readiness may have changed.
///
/// A pipe keeps at most one per open, drops it when replaced, and calls `notify`
/// at most once, after releasing its locks; the kernel then polls again.
package protocol PollNotifier: AnyObject, Sendable {
    func notify()
}

/// A poll whose answer needs a round trip (a cluster's pipe asks PostgreSQL): the pipe
/// answers it exactly once, from any thread.
package protocol PollReplier: AnyObject, Sendable {
    func reply(_ events: PollEvents)
}
