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
        BadMount("empty mount point") { _ in ["mount", ""] },
        BadMount("bad pipe_mode") { ["mount", "-o", "pipe_mode=999", $0] },
        BadMount("bad max_read") { ["mount", "-o", "max_read=lots", $0] },
        BadMount("mistyped command") { ["unmout", $0] },
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
            #expect(lines.count == 1, "\(arguments): \(result.output)")
            #expect(result.output.hasPrefix("npfs: "), "\(arguments): \(result.output)")
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

    /// Every operation that makes no sense here fails with the errno the README lists.
    @Test func operationsThatMakeNoSenseFailWithConventionalErrors() throws {
        try TestMount.with { mount in
            func fails(_ result: Int32, _ expected: Int32, _ what: String) {
                let code = errno
                #expect(result == -1 && code == expected, "\(what): \(result == -1 ? errnoName(code) : "succeeded")")
            }
            // Every name exists already, so the kernel refuses to create one (EEXIST).
            fails(mkdir(mount.path("dir"), 0o755), EEXIST, "mkdir")
            fails(symlink("X", mount.path("L")), EEXIST, "symlink")
            fails(link(mount.path("X"), mount.path("Y")), EEXIST, "link")
            fails(mkfifo(mount.path("F"), 0o600), EEXIST, "mknod")
            fails(open(mount.path("X"), O_RDWR | O_CREAT | O_EXCL, 0o600), EEXIST, "O_CREAT|O_EXCL")
            fails(unlink(mount.path("X")), EPERM, "unlink")
            fails(rename(mount.path("X"), mount.path("Y")), EPERM, "rename")
            fails(rmdir(mount.path("X")), ENOTDIR, "rmdir of a pipe")
            fails(rmdir(mount.directory), EBUSY, "rmdir of the mount point")
            fails(chmod(mount.directory, 0o700), EPERM, "chmod of the mount root")
            fails(chmod(mount.path("X"), 0o600), ENOENT, "chmod of a name that is not live")
            fails(truncate(mount.path("X"), 10), EINVAL, "truncate to 10")
            #expect(truncate(mount.path("X"), 0) == 0)
            fails(open(mount.path(String(repeating: "n", count: 256)), O_RDWR), ENAMETOOLONG, "a 256-byte name")
            fails(open(mount.directory, O_RDWR), EISDIR, "open of the root for writing")
            let fd = open(mount.path("SEEK"), O_RDWR)
            defer { close(fd) }
            var byte: UInt8 = 0
            fails(Int32(pread(fd, &byte, 1, 0)), ESPIPE, "pread")
            fails(Int32(lseek(fd, 0, SEEK_SET)), ESPIPE, "lseek")
            fails(Int32(pwrite(fd, &byte, 1, 0)), ESPIPE, "pwrite")
            let map = mmap(nil, 4096, PROT_READ, MAP_SHARED, fd, 0)
            fails(map == MAP_FAILED ? -1 : 0, ENODEV, "mmap")
            fails(ftruncate(fd, 5), EINVAL, "ftruncate to 5")
            let fallocate = try ChildProcess.run(["fallocate", "-l", "10", mount.path("SEEK")], timeout: 5)
            #expect(fallocate.status != 0 && fallocate.output.contains("Operation not supported"), "\(fallocate.output)")
            // Size 0 moves nothing; a huge read returns what is there.
            #expect(write(fd, &byte, 0) == 0)
            #expect(read(fd, &byte, 0) == 0)
            #expect(Sys.write(fd, Array("abc".utf8)) == .ok(3))
            #expect(Sys.read(fd, 1 << 30) == .bytes(Array("abc".utf8)))
        }
    }

    @Test func versionAndUmountAlias() throws {
        let version = try ChildProcess.run([TestMount.binary, "--version"], timeout: 10)
        #expect(version.status == 0 && version.output.hasPrefix("npfs "), "\(version.output)")
        try TestMount.with { mount in
            // `npfs umount DIR`, the familiar spelling, unmounts rather than mounting DIR again.
            let unmount = try ChildProcess.run([TestMount.binary, "umount", mount.directory], timeout: 15)
            #expect(unmount.status == 0, "\(unmount.output)")
            #expect(!isMounted(mount.directory))
        }
    }

    @Test func maxReadIsAcceptedAndTheDaemonIsCalledNpfs() throws {
        try TestMount.with(options: ["max_read=131072,capacity=1M"]) { mount in
            let comm = try String(contentsOfFile: "/proc/\(mount.daemon.pid)/comm", encoding: .utf8)
            #expect(comm == "npfs\n")
            let fd = open(mount.path("R"), O_RDWR | O_NONBLOCK)
            defer { close(fd) }
            #expect(Sys.write(fd, [UInt8](repeating: 1, count: 200_000)) == .ok(200_000))
            #expect(Sys.read(fd, 1 << 20) == .bytes([UInt8](repeating: 1, count: 200_000)), "a read(2) of several requests")
        }
        // A background mount too: `ps` and the OOM killer print npfs, not exe.
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        #expect(try ChildProcess.run([TestMount.binary, "mount", directory], timeout: 15).status == 0)
        defer { _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15) }
        let pid = try String(decoding: xattr(directory, "user.npfs.pid"), as: UTF8.self)
        #expect(try String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) == "npfs\n")
    }

    /// One mount point, one name: through a symbolic link it is the same directory.
    @Test func aMountPointReachedThroughASymlinkIsOneMountPoint() throws {
        try TestMount.with { mount in
            let link = mount.directory + "-link"
            #expect(symlink(mount.directory, link) == 0)
            defer { unlink(link) }
            let again = try ChildProcess.run([TestMount.binary, "mount", link], timeout: 15)
            #expect(again.status != 0 && again.output.contains("already a mount point"), "\(again.output)")
            let unmount = try ChildProcess.run([TestMount.binary, "unmount", link], timeout: 15)
            #expect(unmount.status == 0, "\(unmount.output)")
            #expect(!isMounted(mount.directory))
        }
    }

    /// mount.sh takes options and the mount point in any order, reruns safely on a path
    /// with a space, and leaves nothing behind when the mount fails.
    @Test func mountShArgumentsAndReruns() throws {
        let script = TestMount.packageRoot + "/mount.sh"
        let environment = ["NPFS_NO_BUILD": "1", "NPFS_BIN": TestMount.binary, "NPFS_NO_LINK": "1"]
        let base = try makeTemporaryDirectory()
        defer { _ = try? FileManager.default.removeItem(atPath: base) }
        let spaced = base + "/with space"
        defer { if isMounted(spaced) { _ = try? ChildProcess.run([TestMount.binary, "unmount", spaced], timeout: 15) } }
        let first = try ChildProcess.run([script, "-o", "mode=ring", spaced], timeout: 60, environment: environment)
        #expect(first.status == 0, "\(first.output)")
        #expect(isMounted(spaced), "the mount point after -o is the one mounted")
        let fd = open(spaced + "/R", O_RDWR)
        #expect(try getfattr(spaced + "/R", "user.npfs.mode") == "ring")
        close(fd)
        let second = try ChildProcess.run([script, spaced, "-o", "mode=ring"], timeout: 60, environment: environment)
        #expect(second.status == 0 && second.output.contains("already mounted"), "\(second.output)")
        #expect(try ChildProcess.run([TestMount.binary, "unmount", spaced], timeout: 15).status == 0)
        // A refused option: nothing mounted, and the directories mount.sh made are gone.
        let fresh = base + "/new/deeper"
        let bad = try ChildProcess.run([script, fresh, "-o", "bogus"], timeout: 60, environment: environment)
        #expect(bad.status != 0)
        #expect(bad.output.contains("unknown mount option"), "\(bad.output)")
        #expect(!FileManager.default.fileExists(atPath: base + "/new"))
        let extra = try ChildProcess.run([script, "a", "b"], timeout: 60, environment: environment)
        #expect(extra.status != 0 && extra.output.contains("more than one mount point"), "\(extra.output)")
    }
}
