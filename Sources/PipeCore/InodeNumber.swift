/// An inode number as the kernel sees it. The root directory is 1 (FUSE_ROOT_ID).
package struct InodeNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: UInt64
    @inlinable package init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable package init(_ rawValue: UInt64) { self.rawValue = rawValue }
    package static let root = InodeNumber(1)
    package var description: String { String(rawValue) }
}
