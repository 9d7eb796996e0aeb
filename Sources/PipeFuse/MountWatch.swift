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

    /// Starts watching the mount whose root has device `device` (its `st_dev`).
    func start(device: dev_t) {
        let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
        let minor = (device & 0xff) | ((device >> 12) & ~0xff)
        watched.withLock { watched in
            if let old = watched { close(old.fd) }
            watched = (fd, "\(major):\(minor)")
        }
    }

    /// True once, when the mount has left the mount table; false while it is there, and
    /// when nothing is watched. Costs one poll(2) while the table does not change.
    func detachedNow() -> Bool {
        watched.withLock { watched in
            guard let (fd, device) = watched else { return false }
            var entry = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
            guard poll(&entry, 1, 0) > 0, entry.revents & Int16(POLLPRI | POLLERR) != 0 else { return false }
            guard let table = Self.read(fd), !Self.lists(device, in: table) else { return false }
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

    private static func read(_ fd: Int32) -> String? {
        guard lseek(fd, 0, SEEK_SET) == 0 else { return nil }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { break }
            text += chunk[..<count]
        }
        return String(decoding: text, as: UTF8.self)
    }

    deinit { if let (fd, _) = watched.withLock({ $0 }) { close(fd) } }
}
