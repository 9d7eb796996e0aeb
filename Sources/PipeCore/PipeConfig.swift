import SystemPackage

/// The settings of one pipe. Every pipe starts with the mount's defaults; a live pipe's
/// settings can change (extended attributes `user.npfs.*`).
public struct PipeConfig: Sendable, Equatable {
    /// Smallest capacity: one page, so that a PIPE_BUF write always fits, as in Linux.
    public static let minimumCapacity = 4096
    /// Largest capacity of one pipe.
    public static let maximumCapacity = 1 << 30
    /// Linux's default pipe capacity.
    public static let defaultCapacity = 65536

    /// Who waits.
    public enum Mode: String, Sendable, CaseIterable {
        /// Linux FIFO behaviour: opens, reads and writes wait for their partner or for room.
        case fifo
        /// The seed driver's ring: nothing ever waits; what does not fit overflows.
        case ring
    }

    /// What a ring-mode write does with bytes that do not fit (counted as dropped either way).
    public enum Overflow: String, Sendable, CaseIterable {
        /// Discard the new bytes that do not fit (the seed's behaviour).
        case drop
        /// Discard the oldest bytes to make room.
        case overwrite
    }

    /// Whether write boundaries are kept.
    public enum Framing: String, Sendable, CaseIterable {
        /// A plain byte stream.
        case stream
        /// Each write(2) is one message; each read(2) returns at most one message.
        case message
    }

    /// Bytes the pipe can buffer.
    public var capacity: Int
    public var mode: Mode
    public var overflow: Overflow
    public var framing: Framing

    public init(capacity: Int = PipeConfig.defaultCapacity, mode: Mode = .fifo, overflow: Overflow = .drop,
                framing: Framing = .stream) throws(Errno) {
        guard PipeConfig.validCapacities.contains(capacity) else { throw .invalidArgument }
        self.capacity = capacity
        self.mode = mode
        self.overflow = overflow
        self.framing = framing
    }

    public static let validCapacities = minimumCapacity...maximumCapacity

    /// Linux FIFO behaviour with the kernel's default capacity.
    public static let defaults = PipeConfig(uncheckedCapacity: defaultCapacity)

    private init(uncheckedCapacity: Int) {
        capacity = uncheckedCapacity
        mode = .fifo
        overflow = .drop
        framing = .stream
    }
}
