import SystemPackage

/// A pipe's settings and figures at one moment.
public struct PipeStatus: Sendable, Equatable {
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

/// One setting of a live pipe.
public enum PipeSetting: Sendable, Equatable {
    case capacity(Int)
    case mode(PipeConfig.Mode)
    case overflow(PipeConfig.Overflow)
    case framing(PipeConfig.Framing)
    case openTimeout(Double)
    case delivery(PipeConfig.Delivery)
}
