import SystemPackage

/// A name directly under the mount point: bytes, as Linux treats file names (no Unicode
/// normalisation), at most 255 of them, with no `/` and no NUL.
package struct PipeName: Hashable, Sendable, CustomStringConvertible {
    package static let maxLength = 255
    package let bytes: [UInt8]

    /// Validates a name as the kernel passed it; ENAMETOOLONG past 255 bytes, EINVAL if empty or with `/`.
    package init(bytes: [UInt8]) throws(Errno) {
        guard !bytes.isEmpty, !bytes.contains(UInt8(ascii: "/")), !bytes.contains(0) else { throw .invalidArgument }
        guard bytes.count <= PipeName.maxLength else { throw .fileNameTooLong }
        self.bytes = bytes
    }

    package init(_ string: String) throws(Errno) { try self.init(bytes: Array(string.utf8)) }

    /// The key names are matched by: the bytes, or with ASCII letters folded to lower case.
    package func key(ignoringCase: Bool) -> [UInt8] {
        guard ignoringCase else { return bytes }
        return bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
    }

    package var description: String { String(decoding: bytes, as: UTF8.self) }
}
