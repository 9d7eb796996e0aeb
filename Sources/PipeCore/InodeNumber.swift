/// An inode number as the kernel sees it. The root directory is 1 (FUSE_ROOT_ID).
package struct InodeNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: UInt64
    @inlinable package init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable package init(_ rawValue: UInt64) { self.rawValue = rawValue }
    package static let root = InodeNumber(1)
    package var description: String { String(rawValue) }

    /// A number for a name this mount has not looked up (a pipe live on another host, as
    /// `readdir` lists it): from the name's hash, with the top bit set, which the numbers
    /// this mount gives out (counted from 2) never reach.
    package static func derived(from key: [UInt8]) -> InodeNumber { InodeNumber(fnv1a(key) | 1 << 63) }
}

/// The 64-bit FNV-1a hash of `bytes`: stable across processes and hosts.
package func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 14_695_981_039_346_656_037
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
    return hash
}
