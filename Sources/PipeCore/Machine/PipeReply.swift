import SystemPackage

/// What the core answers to one request: the adapter turns it into exactly one FUSE reply.
public enum PipeReply: Sendable, Equatable {
    /// The open succeeded; later requests carry this handle.
    case opened(PipeHandle)
    /// Bytes read; empty means end of file.
    case data([UInt8])
    /// Bytes written (a blocking write reports its full length, an interrupted one what was taken).
    case written(Int)
    case failed(Errno)
}

/// The result of offering a request to the core.
public enum Attempt: Sendable, Equatable {
    /// Answer now with this.
    case done(PipeReply)
    /// The request must wait and no waiter was offered: nothing changed; offer it again with one.
    case mustWait
    /// The waiter was queued; the core will resume it exactly once.
    case queued
    /// A read was answered with bytes, through the sink it was offered (or, if it came
    /// with a waiter, through that waiter's `resume(reading:)`).
    case answered
}
