import Glibc
import NpfsClient

extension Spawn {
    /// Starts `npfs ARGUMENTS --ready-fd N MOUNTPOINT` in a new session and waits until it
    /// reports the mount ready (returns 0) or exits (returns its status).
    static func daemon(arguments: [String], mountpoint: String, environment extra: [String: String] = [:]) throws -> Int32 {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CommandError("pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(readEnd) }
        let pid: Int32
        do {
            // Its own file, not /proc/self/exe: the kernel names the process after it, and
            // `ps`, `top` and the OOM killer should say npfs, not exe.
            pid = try start(Request(["npfs"] + arguments + ["--ready-fd", String(writeEnd), mountpoint],
                                    executable: executablePath ?? "/proc/self/exe", stdin: "/dev/null",
                                    keep: [writeEnd], environment: extra.isEmpty ? nil : environment.merging(extra) { $1 },
                                    newSession: true))
        } catch {
            close(writeEnd)
            throw CommandError("cannot start the npfs daemon: \(error)")
        }
        close(writeEnd)
        var byte: UInt8 = 0
        var got: Int
        repeat { got = read(readEnd, &byte, 1) } while got < 0 && errno == EINTR
        if got == 1 { return 0 }
        return exitStatus(of: pid, block: true) ?? 1
    }
}
