import Glibc

/// The kernel's mount table (/proc/self/mountinfo), as far as npfs needs it.
struct MountTable {
    struct Entry {
        let mountpoint: String
        let type: String
    }

    let entries: [Entry]

    static func current() -> MountTable {
        guard let file = fopen("/proc/self/mountinfo", "r") else { return MountTable(entries: []) }
        defer { fclose(file) }
        var entries: [Entry] = []
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let fields = String(cString: line!).split(separator: " ")
            // id parent dev root MOUNTPOINT options [optional...] - TYPE source superoptions
            guard fields.count > 4, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            entries.append(Entry(mountpoint: unescape(fields[4]), type: String(fields[dash + 1])))
        }
        return MountTable(entries: entries)
    }

    /// The last (topmost) mount at `path`.
    func entry(at path: String) -> Entry? { entries.last { $0.mountpoint == path } }

    /// mountinfo writes space, tab, newline and backslash as octal escapes.
    private static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = Array(field.utf8)[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "\\"), rest.count >= 3,
               let value = UInt8(String(decoding: rest.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                rest = rest.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// An absolute, normalised path, with symbolic links resolved, that never follows the last
/// component into its mount (which may be a dead FUSE mount that answers ENOTCONN).
func absolutePath(_ path: String) -> String {
    var base: [Substring] = []
    if !path.hasPrefix("/") {
        if let cwd = getcwd(nil, 0) {
            base = String(cString: cwd).split(separator: "/")
            free(cwd)
        }
    }
    var parts = base
    for part in path.split(separator: "/") {
        switch part {
        case ".": continue
        case "..": _ = parts.popLast()
        default: parts.append(part)
        }
    }
    // Resolve symbolic links in the parent, which is an ordinary directory.
    let last = parts.popLast()
    let parent = "/" + parts.joined(separator: "/")
    var resolvedParent = parent
    if let real = realpath(parent, nil) {
        resolvedParent = String(cString: real)
        free(real)
    }
    guard let last else { return resolvedParent }
    let path = (resolvedParent == "/" ? "" : resolvedParent) + "/" + last
    // A symbolic link as the last component names its target, so that one mount point has one name.
    var info = stat()
    if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK, let real = realpath(path, nil) {
        defer { free(real) }
        return String(cString: real)
    }
    return path
}
