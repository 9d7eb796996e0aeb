import ArgumentParser
import Glibc
import NpfsClient
import PipeCore
import SystemPackage

/// `npfs unmount MOUNTPOINT`: a clean shutdown, even while pipes are open and requests wait.
struct UnmountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount",
        abstract: "Unmount npfs: answer every waiting request, unmount, and stop the daemon.",
        discussion: "Also clears a stale mount left by a daemon that was killed (\"Transport endpoint is not connected\").",
        aliases: ["umount"]
    )

    @Argument(help: "The mount point.", completion: Completions.mountPoints)
    var mountpoint: String

    @Option(help: "Seconds to wait for the daemon to finish.")
    var timeout: Double = 10

    func run() throws {
        let path = absolutePath(mountpoint)
        guard let entry = MountTable.current().entry(at: path) else { throw CommandError("\(path) is not mounted") }
        guard entry.type.hasPrefix("fuse") else { throw CommandError("\(path) is not a FUSE mount (\(entry.type))") }
        let pid: pid_t
        do {
            pid = try NpfsMount(path: path).daemonProcess()
        } catch .socketNotConnected {
            // The daemon is gone: detach the dead mount.
            try detach(path)
            print("npfs: cleared the stale mount at \(path)")
            return
        } catch {
            throw CommandError("\(path) is not served by npfs: \(error)")
        }
        guard kill(pid, SIGTERM) == 0 else {
            throw CommandError("cannot signal the npfs daemon (pid \(pid)): \(String(cString: strerror(errno)))")
        }
        let deadline = Deadline(after: timeout)
        while !deadline.hasPassed {
            if MountTable.current().entry(at: path) == nil && !isAlive(pid) { return }
            usleep(20_000)
        }
        throw CommandError("the npfs daemon (pid \(pid)) did not finish within \(timeout) s")
    }

    /// Lazily unmounts a mount whose daemon died.
    private func detach(_ path: String) throws {
        if geteuid() == 0 {
            guard umount2(path, Int32(MNT_DETACH)) == 0 else {
                throw CommandError("cannot unmount \(path): \(String(cString: strerror(errno)))")
            }
            return
        }
        let status = Spawn.run(Spawn.Request(["fusermount3", "-u", "-z", path]))
        if status != 0 { throw CommandError("fusermount3 -u -z \(path) failed") }
    }
}

/// Whether a process still runs (a zombie, exited but not yet reaped by its parent, does not).
func isAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 512)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
    let stat = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let close = stat.lastIndex(of: ")") else { return false }
    return stat[close...].dropFirst(2).first != "Z"
}
