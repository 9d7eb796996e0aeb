import SystemPackage

/// What a waiting request is resumed with: the adapter turns it into exactly one FUSE reply.
package enum PipeReply: Sendable, Equatable {
    /// The open succeeded; later requests carry this handle.
    case opened(PipeHandle)
    /// Bytes read; empty means end of file.
    case data([UInt8])
    /// Bytes written (a blocking write reports its full length, an interrupted one what was taken).
    case written(Int)
    case failed(Errno)
}

/// What an open answers: its reply now, or that it waits for its partner. Only an open's
/// answers can be written.
package enum OpenResult: Sendable, Equatable {
    case done(OpenReply)
    /// The waiter was queued; the pipe will resume it exactly once.
    case queued
}

package enum OpenReply: Sendable, Equatable {
    /// The open succeeded; later requests carry this handle.
    case opened(PipeHandle)
    case failed(Errno)
}

/// What a read answers.
package enum ReadResult: Sendable, Equatable {
    /// End of file (empty data) or an error, now. (Bytes are lent, never returned: see
    /// `answered`; a copying test helper answers them as data.)
    case done(ReadReply)
    /// It must wait and no waiter was offered: nothing changed; offer it again with one.
    case mustWait
    /// The waiter was queued; the pipe will resume it exactly once.
    case queued
    /// Answered with bytes, through the sink it was offered (or, if it came with a waiter,
    /// through that waiter's `resume(reading:)`).
    case answered
}

package enum ReadReply: Sendable, Equatable {
    /// Bytes read; empty means end of file.
    case data([UInt8])
    case failed(Errno)
}

/// What a write answers.
package enum WriteResult: Sendable, Equatable {
    case done(WriteReply)
    /// It must wait and no waiter was offered: nothing changed; offer it again with one.
    case mustWait
    /// The waiter was queued; the pipe will resume it exactly once.
    case queued
}

/// What a poll answers.
package enum PollResult: Sendable, Equatable {
    /// The open's readiness now.
    case events(PollEvents)
    /// It must be asked elsewhere and no replier was offered: offer it again with one.
    case mustAsk
    /// The replier will be answered exactly once.
    case queued
}

package enum WriteReply: Sendable, Equatable {
    /// Bytes taken (a blocking write reports its full length, an interrupted one what was taken).
    case written(Int)
    case failed(Errno)
}

extension PipeReply {
    package init(_ reply: OpenReply) {
        switch reply {
        case .opened(let handle): self = .opened(handle)
        case .failed(let error): self = .failed(error)
        }
    }

    package init(_ reply: ReadReply) {
        switch reply {
        case .data(let bytes): self = .data(bytes)
        case .failed(let error): self = .failed(error)
        }
    }

    package init(_ reply: WriteReply) {
        switch reply {
        case .written(let count): self = .written(count)
        case .failed(let error): self = .failed(error)
        }
    }
}

extension OpenResult {
    /// The waiter was queued (a pattern match: cheaper than comparing whole results).
    var isQueued: Bool { if case .queued = self { true } else { false } }
}

extension ReadResult {
    var isQueued: Bool { if case .queued = self { true } else { false } }
}

extension WriteResult {
    var isQueued: Bool { if case .queued = self { true } else { false } }
}
