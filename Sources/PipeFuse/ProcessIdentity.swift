import Glibc
import PipeCore

extension ClientIdentity {
    /// The process behind a request: the thread group of the calling thread and its command
    /// name, from `/proc/TID/status` (read once, at the open). A process that is gone, or a
    /// pid from another pid namespace, keeps the thread id and an empty command. Control
    /// characters in the name (prctl allows a newline) show as `?`.
    static func of(_ caller: Caller) -> ClientIdentity {
        var identity = ClientIdentity(pid: caller.pid, uid: caller.uid, command: "")
        guard caller.pid > 0, let file = fopen("/proc/\(caller.pid)/status", "r") else { return identity }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        var found = 0
        while found < 2, fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("Name:") {
                let name = text.dropFirst(5).drop { $0 == " " || $0 == "\t" }.prefix { $0 != "\n" }
                identity.command = String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
                found += 1
            } else if text.hasPrefix("Tgid:"), let tgid = Int32(text.dropFirst(5).trimmingCharacters(in: " \t\n")) {
                identity.pid = tgid
                found += 1
            }
        }
        return identity
    }
}

/// A thread's supplementary groups, from the `Groups:` line of `/proc/TID/status` (as
/// libfuse's fuse_req_getgroups reads them); none if the thread is gone.
enum SupplementaryGroups {
    @Sendable static func of(thread: Int32) -> [UInt32] {
        guard thread > 0 else { return [] }
        let fd = open("/proc/\(thread)/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while text.count < 1 << 20 {
            let count = read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            text += chunk[..<count]
        }
        return ProcStatus.groups(in: String(decoding: text, as: UTF8.self))
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed().reduce(into: Substring()) { $0.append($1) }
    }
}

/// Whether the open(2) a FUSE `open` comes from was made with O_CREAT (see `OpenSyscall`):
/// from `/proc/TID/syscall` of the calling thread, which waits in that call meanwhile.
enum OpenIntent {
    static func usedCreate(thread: Int32, flags: Int32) -> Bool {
        let line = thread > 0 ? firstLine(of: "/proc/\(thread)/syscall") : nil
        return line.flatMap(OpenSyscall.usesCreate) ?? OpenSyscall.likelyCreate(flags: flags)
    }

    private static func firstLine(of path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        return String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
