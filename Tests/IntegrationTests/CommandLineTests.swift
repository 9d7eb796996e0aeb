import Foundation
import Glibc
import Testing

/// Bad input gets one line of error, a non-zero exit, and leaves nothing mounted.
@Suite(.serialized) struct CommandLineTests {
    struct BadMount: Sendable, CustomTestStringConvertible {
        let name: String
        let arguments: @Sendable (String) -> [String]
        let prepare: @Sendable (String) -> Void
        var testDescription: String { name }

        init(_ name: String, prepare: @escaping @Sendable (String) -> Void = { _ in }, _ arguments: @escaping @Sendable (String) -> [String]) {
            self.name = name
            self.arguments = arguments
            self.prepare = prepare
        }
    }

    static let badMounts: [BadMount] = [
        BadMount("unknown option") { ["mount", "-o", "bogus", $0] },
        BadMount("bad size") { ["mount", "-o", "capacity=12Q", $0] },
        BadMount("size out of range") { ["mount", "-o", "capacity=100", $0] },
        BadMount("missing mount point") { ["mount", $0 + "/missing"] },
        BadMount("mount point is a file", prepare: { _ = creat($0 + "/file", 0o600) }) { ["mount", $0 + "/file"] },
        BadMount("non-empty mount point", prepare: { _ = creat($0 + "/file", 0o600) }) { ["mount", $0] },
        BadMount("no mount point") { _ in ["mount"] },
    ]

    @Test(arguments: badMounts)
    func badMountIsOneLineAndNonZero(_ case: BadMount) throws {
        let directory = try makeTemporaryDirectory()
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        `case`.prepare(directory)
        for foreground in [false, true] {
            var arguments = `case`.arguments(directory)
            if foreground { arguments.insert("-f", at: 1) }
            let result = try ChildProcess.run([TestMount.binary] + arguments, timeout: 15)
            #expect(result.status != 0)
            let lines = result.output.split(separator: "\n")
            #expect(lines.count == 1 || `case`.name == "no mount point", "\(arguments): \(result.output)")
            #expect(!isMounted(directory) && !isMounted(directory + "/file"))
        }
    }

    @Test func mountPointInUseIsRefused() throws {
        try TestMount.with { mount in
            let result = try ChildProcess.run([TestMount.binary, "mount", mount.directory], timeout: 15)
            #expect(result.status != 0)
            #expect(result.output.split(separator: "\n").count == 1, "\(result.output)")
            #expect(result.output.contains("already a mount point"))
            #expect(mount.daemon.isRunning)
        }
    }

    @Test func debugLogsRequestsInTheForeground() throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        let daemon = try ChildProcess([TestMount.binary, "mount", "-d", directory])
        defer { if daemon.isRunning { daemon.signal(SIGKILL); daemon.wait(timeout: 5) } }
        #expect(eventually(timeout: 10) { isMounted(directory) })
        #expect(daemon.isRunning, "-d implies -f: the command stays in the foreground")
        #expect(livePipes(directory) == [])
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == 0)
        #expect(daemon.output.contains("opcode: INIT") && daemon.output.contains("opcode: OPENDIR"), "\(daemon.output.prefix(500))")
        #expect(!isMounted(directory))
    }

    @Test func unmountOfSomethingNotMountedFails() throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        let result = try ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15)
        #expect(result.status != 0)
        #expect(result.output.contains("not mounted"), "\(result.output)")
    }

    @Test func capacityOptionSetsThePipeSize() throws {
        try TestMount.with(options: ["capacity=8K"]) { mount in
            let fd = open(mount.path("SMALL"), O_RDWR | O_NONBLOCK)
            #expect(fd >= 0)
            defer { close(fd) }
            #expect(Sys.write(fd, [UInt8](repeating: 1, count: 10_000)) == .ok(8192))
            #expect(Sys.write(fd, [1]) == .error(EAGAIN))
        }
    }

    @Test func standardFuseOptionsPassThrough() throws {
        try TestMount.with(options: ["allow_other,noatime", "fsname=mypipes"]) { mount in
            let table = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            let line = table.split(separator: "\n").first { $0.contains(" \(mount.directory) ") } ?? ""
            #expect(line.contains("noatime") && line.contains("allow_other") && line.contains("fuse.npfs mypipes"), "\(line)")
        }
    }

    @Test func operationsThatMakeNoSenseFailWithConventionalErrors() throws {
        try TestMount.with { mount in
            // Every name exists already, so the kernel refuses to create one (EEXIST).
            #expect(mkdir(mount.path("dir"), 0o755) == -1 && errno == EEXIST)
            #expect(symlink("X", mount.path("L")) == -1 && errno == EEXIST)
            #expect(unlink(mount.path("X")) == -1 && errno == EPERM)
            #expect(rename(mount.path("X"), mount.path("Y")) == -1 && errno == EPERM)
            #expect(truncate(mount.path("X"), 10) == -1 && errno == EINVAL)
            #expect(truncate(mount.path("X"), 0) == 0)
            #expect(open(mount.path(String(repeating: "n", count: 256)), O_RDWR) == -1 && errno == ENAMETOOLONG)
            let fd = open(mount.path("SEEK"), O_RDWR)
            defer { close(fd) }
            var byte: UInt8 = 0
            #expect(pread(fd, &byte, 1, 0) == -1 && errno == ESPIPE)
        }
    }
}
