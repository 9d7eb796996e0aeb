/// An inode number as the kernel sees it. The root directory is 1 (FUSE_ROOT_ID).
public struct InodeNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static let root = InodeNumber(1)
    public var description: String { String(rawValue) }
}
