import SystemPackage

/// A pipe's settings and figures at one moment.
package struct PipeStatus: Sendable, Equatable {
    package var config: PipeConfig
    /// Owner, group and permission bits (chmod and chown change them).
    package var ownership: Ownership
    package var buffered: Int
    package var readers: Int
    package var writers: Int
    /// Bytes writers handed over: the sum of the counts write(2) reported.
    package var bytesWritten: UInt64
    package var bytesRead: UInt64
    /// Bytes discarded by overflow (ring mode): new ones dropped or old ones overwritten.
    /// Always `buffered == bytesWritten - bytesRead - dropped`.
    package var dropped: UInt64
    /// Bytes of memory the pipe's buffer (and its message lengths) hold now.
    package var allocated: Int
    package var lastRead: Timestamp
    package var lastWrite: Timestamp
    package var created: Timestamp
}

/// One setting of a live pipe.
package enum PipeSetting: Sendable, Equatable {
    case capacity(Int)
    case mode(PipeConfig.Mode)
    case overflow(PipeConfig.Overflow)
    case framing(PipeConfig.Framing)
    case openTimeout(Double)
    case delivery(PipeConfig.Delivery)
    case persist(Bool)
}
