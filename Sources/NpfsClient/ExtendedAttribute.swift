import SystemPackage

/// An extended attribute of any path, by bytes: for programs (and tests) that read or
/// write attributes npfs's own calls do not name.
package enum ExtendedAttribute {
    /// getxattr(2), the whole value however long.
    package static func get(_ path: [UInt8], _ name: [UInt8]) throws(Errno) -> [UInt8] { try Syscalls.getxattr(path, name) }

    /// getxattr(2) into a buffer of `size` bytes, once (ERANGE if the value is larger).
    package static func get(_ path: [UInt8], _ name: [UInt8], size: Int) throws(Errno) -> [UInt8] {
        try Syscalls.getxattr(path, name, size: size)
    }

    /// setxattr(2), creating or replacing.
    package static func set(_ path: [UInt8], _ name: [UInt8], _ value: [UInt8]) throws(Errno) {
        try Syscalls.setxattr(path, name, value)
    }

    /// removexattr(2).
    package static func remove(_ path: [UInt8], _ name: [UInt8]) throws(Errno) { try Syscalls.removexattr(path, name) }
}
