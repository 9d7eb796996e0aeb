import SystemPackage

/// One entry of a directory listing (readdir), for the command line's checks and completions.
public struct DirectoryEntry: Sendable, Equatable {
    public let name: [UInt8]
    public let isDirectory: Bool

    /// The entries of the directory at `path`, without `.` and `..`.
    public static func list(_ path: String) throws(Errno) -> [DirectoryEntry] {
        try Syscalls.directoryEntries(Array(path.utf8))
    }
}
