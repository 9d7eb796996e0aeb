import SystemPackage

/// The settings of one pipe. Every pipe starts with the mount's defaults.
public struct PipeConfig: Sendable, Equatable {
    /// Smallest capacity: one page, so that a PIPE_BUF write always fits, as in Linux.
    public static let minimumCapacity = 4096
    /// Largest capacity of one pipe.
    public static let maximumCapacity = 1 << 30
    /// Linux's default pipe capacity.
    public static let defaultCapacity = 65536

    /// Bytes the pipe can buffer.
    public var capacity: Int

    public init(capacity: Int = PipeConfig.defaultCapacity) throws(Errno) {
        guard (PipeConfig.minimumCapacity...PipeConfig.maximumCapacity).contains(capacity) else {
            throw .invalidArgument
        }
        self.capacity = capacity
    }
}
