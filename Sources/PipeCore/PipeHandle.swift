/// The key of one open of a pipe: the `fh` the kernel hands back on every read, write,
/// poll and release of that open. It stands in for the seed driver's FsContext.
package struct PipeHandle: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: UInt64
    @inlinable package init(rawValue: UInt64) { self.rawValue = rawValue }
    package var description: String { "fh\(rawValue)" }
}
