import Glibc
import Synchronization

/// Notices the mount being detached from every path (`fusermount3 -u -z`, `umount -l`)
/// while processes still hold it, which the kernel does not tell a FUSE daemon: the
/// connection lives on until the last reference goes.
///
/// It watches `/proc/self/mountinfo`, which reports a change of the mount table to `poll`
/// (POLLPRI), and reads it again only then, looking for the mount's device.
final class MountWatch: Sendable {
    /// The mount table's descriptor and the mount's device ("major:minor"), once started.
    private let watched = Mutex<(fd: Int32, device: String)?>(nil)

    /// Starts watching the topmost mount at `path` (absolute), found in the mount table:
    /// nothing here touches the mount itself, which the daemon must not do (under valgrind
    /// a thread blocked on its own mount stops every other thread, and so the mount).
    func start(mountpoint path: String) {
        let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        guard let table = ProcFile.contents(of: fd), let device = Self.device(at: path, in: table) else {
            close(fd)
            return
        }
        watched.withLock { watched in
            if let old = watched { close(old.fd) }
            watched = (fd, device)
        }
    }

    /// The device ("major:minor", the third field) of the last mount at `path` in a
    /// mountinfo text, which writes space, tab, newline and backslash as octal escapes.
    static func device(at path: String, in table: String) -> String? {
        var escaped = ""
        for character in path {
            switch character {
            case " ": escaped += "\\040"
            case "\t": escaped += "\\011"
            case "\n": escaped += "\\012"
            case "\\": escaped += "\\134"
            default: escaped.append(character)
            }
        }
        return table.split(separator: "\n").last { line in
            let fields = line.split(separator: " ", maxSplits: 5)
            return fields.count > 4 && fields[4] == escaped
        }.map { String($0.split(separator: " ")[2]) }
    }

    /// True once, when the mount has left the mount table; false while it is there, and
    /// when nothing is watched. Costs one poll(2) while the table does not change.
    func detachedNow() -> Bool {
        watched.withLock { watched in
            guard let (fd, device) = watched else { return false }
            var entry = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
            guard poll(&entry, 1, 0) > 0, entry.revents & Int16(POLLPRI | POLLERR) != 0 else { return false }
            guard let table = ProcFile.contents(of: fd), !Self.lists(device, in: table) else { return false }
            close(fd)
            watched = nil
            return true
        }
    }

    /// Whether a mountinfo text has a mount of `device` (its third field).
    static func lists(_ device: String, in table: String) -> Bool {
        table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ", maxSplits: 3)
            return fields.count > 2 && fields[2] == device
        }
    }

    deinit { if let (fd, _) = watched.withLock({ $0 }) { close(fd) } }
}
