import Glibc
import PipeCore

extension ClientIdentity {
    /// The process behind a request: the thread group of the calling thread and its command
    /// name, from `/proc/TID/status` (read once, at the open). A process that is gone, or a
    /// pid from another pid namespace, keeps the thread id and an empty command. Control
    /// characters in the name (prctl allows a newline) show as `?`.
    static func of(_ caller: Caller) -> ClientIdentity {
        var identity = ClientIdentity(pid: caller.pid, uid: caller.uid, command: "")
        guard caller.pid > 0, let status = ProcFile.contents(of: "/proc/\(caller.pid)/status") else { return identity }
        if let name = ProcStatus.field("Name", in: status) {
            identity.command = String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
        }
        if let tgid = ProcStatus.field("Tgid", in: status).flatMap({ Int32($0) }) { identity.pid = tgid }
        return identity
    }
}

/// A thread's supplementary groups, from the `Groups:` line of `/proc/TID/status` (as
/// libfuse's fuse_req_getgroups reads them); none if the thread is gone.
enum SupplementaryGroups {
    @Sendable static func of(thread: Int32) -> [UInt32] {
        guard thread > 0, let status = ProcFile.contents(of: "/proc/\(thread)/status") else { return [] }
        return ProcStatus.groups(in: status)
    }
}

/// Whether the open(2) a FUSE `open` comes from was made with O_CREAT (see `OpenSyscall`):
/// from `/proc/TID/syscall` of the calling thread, which waits in that call meanwhile.
enum OpenIntent {
    static func usedCreate(thread: Int32, flags: Int32) -> Bool {
        let line = thread > 0 ? ProcFile.contents(of: "/proc/\(thread)/syscall")?.split(separator: "\n").first.map(String.init) : nil
        return line.flatMap(OpenSyscall.usesCreate) ?? OpenSyscall.likelyCreate(flags: flags)
    }
}
