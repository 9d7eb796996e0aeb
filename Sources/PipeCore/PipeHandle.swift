/// The key of one open of a pipe: the `fh` the kernel hands back on every read, write,
/// poll and release of that open. It stands in for the seed driver's FsContext.
public struct PipeHandle: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "fh\(rawValue)" }
}
