import SystemPackage

/// One entry of a directory listing (readdir), for the command line's checks and completions.
package struct DirectoryEntry: Sendable, Equatable {
    package let name: [UInt8]
    package let isDirectory: Bool

    /// The entries of the directory at `path`, without `.` and `..`.
    package static func list(_ path: String) throws(Errno) -> [DirectoryEntry] {
        try Syscalls.directoryEntries(Array(path.utf8))
    }
}
