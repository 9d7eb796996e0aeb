import Foundation
import Glibc

/// An npfs mounted on a fresh temporary directory for one test, always unmounted after.
///
/// The daemon runs in the foreground as a child of the test with a watchdog: it holds
/// the read end of a pipe whose write end only this process has, so if the test runner
/// dies, the daemon sees the hang-up and unmounts itself.
final class TestMount: @unchecked Sendable {
    let directory: String
    let daemon: ChildProcess
    private var watchdogWriteEnd: Int32

    /// The npfs under test: `$NPFS_BIN`, else the debug build next to the test bundle.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["NPFS_BIN"] { return path }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("npfs").path
    }

    /// The package root (for mount.sh).
    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// `launcher` comes before the daemon's command line (`nsenter` into a network namespace).
    init(options: [String] = [], launcher: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw TestFailure("no npfs binary at \(Self.binary): build first (swift build)")
        }
        directory = try makeTemporaryDirectory()
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe failed") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        watchdogWriteEnd = fds[1]
        var arguments = launcher + [Self.binary, "mount", "-f", "--watchdog-fd", String(fds[0])]
        for option in options + Self.transportOptions(besides: options) { arguments += ["-o", option] }
        arguments.append(directory)
        do {
            daemon = try ChildProcess(arguments, keep: [fds[0]])
        } catch {
            close(fds[0]); close(fds[1]); rmdir(directory)
            throw error
        }
        close(fds[0])
        guard eventually(timeout: 10, { isMounted(directory) || !daemon.isRunning }), isMounted(directory) else {
            let output = daemon.output
            tearDown()
            throw TestFailure("npfs did not mount \(directory): \(output)")
        }
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// ./test.sh's second pass runs the integration tests with NPFS_TEST_TRANSPORT=io_uring:
    /// a mount then insists on io_uring (`io_uring=on`, so that none quietly falls back),
    /// while the kernel offers it and the test chose nothing itself.
    static func transportOptions(besides options: [String]) -> [String] {
        guard ProcessInfo.processInfo.environment["NPFS_TEST_TRANSPORT"] == "io_uring",
              !options.contains(where: { $0.hasPrefix("io_uring") }),
              (try? String(contentsOfFile: "/sys/module/fuse/parameters/enable_uring", encoding: .utf8))?.hasPrefix("Y") == true
        else { return [] }
        return ["io_uring=on"]
    }

    /// Closes this process's end of the watchdog pipe, as the death of the runner would.
    func dropWatchdog() {
        close(watchdogWriteEnd)
        watchdogWriteEnd = -1
    }

    /// Runs `body` with a fresh mount and always unmounts, also when `body` throws.
    static func with<T>(options: [String] = [], _ body: (TestMount) throws -> T) throws -> T {
        let mount = try TestMount(options: options)
        defer { mount.tearDown() }
        return try body(mount)
    }

    /// Unmounts (retrying while the kernel still says busy), falls back to SIGTERM and
    /// then SIGKILL of the daemon this test started, detaches whatever is left, removes the directory.
    func tearDown() {
        if daemon.isRunning {
            for _ in 0..<20 where isMounted(directory) {
                if (try? ChildProcess.run(["fusermount3", "-u", directory], timeout: 5))?.status == 0 { break }
                usleep(50_000)
            }
            if daemon.wait(timeout: 5) == nil {
                daemon.signal(SIGTERM)
                if daemon.wait(timeout: 5) == nil {
                    daemon.signal(SIGKILL)
                    daemon.wait(timeout: 5)
                }
            }
        }
        if isMounted(directory) { _ = try? ChildProcess.run(["fusermount3", "-u", "-z", directory], timeout: 5) }
        if watchdogWriteEnd >= 0 { close(watchdogWriteEnd) }
        rmdir(directory)
    }
}

/// Whether `path` is a mount point now (per /proc/self/mountinfo).
func isMounted(_ path: String) -> Bool {
    guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
    let escaped = path.replacingOccurrences(of: " ", with: "\\040")
    return table.split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first.map(String.init) == escaped }
}
