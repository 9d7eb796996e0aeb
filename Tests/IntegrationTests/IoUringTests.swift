import Foundation
import Glibc
import Testing

/// FUSE over io_uring, as far as npfs goes today: `./mount.sh --io-uring` lets the kernel
/// offer it, and `npfs status` says whether a mount was offered it at INIT (npfs serves
/// over /dev/fuse either way). Each test that changes the kernel's `enable_uring` puts the
/// old value back, also on failure.
@Suite(.serialized) struct IoUringTests {
    static let parameter = "/sys/module/fuse/parameters/enable_uring"

    /// `body` with the fuse module's `enable_uring` set to `on`, the old value restored after.
    static func withEnableUring<T>(_ on: Bool, _ body: () throws -> T) throws -> T {
        let old = try String(contentsOfFile: parameter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        defer { try? (old + "\n").write(toFile: parameter, atomically: false, encoding: .utf8) }
        try (on ? "Y\n" : "N\n").write(toFile: parameter, atomically: false, encoding: .utf8)
        return try body()
    }

    static var kernelHasIt: Bool { FileManager.default.fileExists(atPath: parameter) }

    @Test func statusSaysWhetherTheKernelOfferedIoUring() throws {
        guard Self.kernelHasIt else {
            // A kernel without it never offers it.
            try TestMount.with { mount in
                let status = try ChildProcess.run([TestMount.binary, "status", mount.directory]).output
                #expect(status.contains("; requests over /dev/fuse (the kernel does not offer io_uring)"), "\(status)")
            }
            return
        }
        for on in [true, false] {
            try Self.withEnableUring(on) { () throws in
                try TestMount.with { mount in
                    let status = try ChildProcess.run([TestMount.binary, "status", mount.directory]).output
                    let said = on ? "(the kernel offers io_uring, which npfs does not use yet)" : "(the kernel does not offer io_uring)"
                    #expect(status.split(separator: "\n").first?.hasSuffix("; requests over /dev/fuse " + said) == true, "\(status)")
                    #expect(try getfattr(mount.directory, "user.npfs.transport")
                        == "transport=dev_fuse\nio_uring=\(on ? "offered" : "not_offered")\n")
                    // Served as ever: a pipe works whatever the kernel offered.
                    let reader = try ChildProcess(["cat", mount.path("P")])
                    defer { reader.signal(SIGKILL) }
                    #expect(try ChildProcess.shell("echo hi > \(mount.path("P"))", timeout: 10).status == 0)
                    #expect(reader.wait(timeout: 10) == 0 && reader.output == "hi\n")
                }
            }
        }
    }

    /// With -d, the daemon says once what the kernel offered.
    @Test func debugSaysOnceWhatTheKernelOffered() throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        let daemon = try ChildProcess([TestMount.binary, "mount", "-d", directory])
        defer {
            if isMounted(directory) { _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15) }
            if daemon.wait(timeout: 10) == nil { daemon.signal(SIGKILL) }
        }
        #expect(eventually(timeout: 10) { daemon.output.contains("FUSE over io_uring") })
        let said = daemon.output.split(separator: "\n").filter { $0.hasPrefix("npfs: the kernel") && $0.contains("FUSE over io_uring") }
        let offered = (try? String(contentsOfFile: Self.parameter, encoding: .utf8))?.hasPrefix("Y") == true
        #expect(said == [offered ? "npfs: the kernel offers FUSE over io_uring, which npfs does not use yet: requests over /dev/fuse"
                                 : "npfs: the kernel does not offer FUSE over io_uring (see ./mount.sh --io-uring): requests over /dev/fuse"],
                "\(said)")
    }

    @Test func mountShTurnsIoUringOnAndOffAndAtBoot() throws {
        let etc = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: etc) }
        let script = TestMount.packageRoot + "/mount.sh"
        guard Self.kernelHasIt else {
            let refused = try ChildProcess.run([script, "--io-uring"], timeout: 30)
            #expect(refused.status != 0 && refused.output.contains("has no FUSE over io_uring"), "\(refused.output)")
            return
        }
        try Self.withEnableUring(false) { () throws in
            let value = { (try? String(contentsOfFile: Self.parameter, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) }
            let on = try ChildProcess.run([script, "--io-uring", "--persistent"], timeout: 30, environment: ["NPFS_ETC": etc])
            #expect(on.status == 0, "\(on.output)")
            #expect(value() == "Y")
            #expect((try? String(contentsOfFile: etc + "/modprobe.d/npfs-io-uring.conf", encoding: .utf8)) == "options fuse enable_uring=1\n")
            #expect((try? String(contentsOfFile: etc + "/tmpfiles.d/npfs-io-uring.conf", encoding: .utf8)) == "w \(Self.parameter) - - - - Y\n")
            let off = try ChildProcess.run([script, "--no-io-uring"], timeout: 30, environment: ["NPFS_ETC": etc])
            #expect(off.status == 0, "\(off.output)")
            #expect(value() == "N")
            #expect(!FileManager.default.fileExists(atPath: etc + "/modprobe.d/npfs-io-uring.conf"))
            #expect(!FileManager.default.fileExists(atPath: etc + "/tmpfiles.d/npfs-io-uring.conf"))
            let wrong = try ChildProcess.run([script, "--io-uring", "/mnt/elsewhere"], timeout: 30)
            #expect(wrong.status != 0 && wrong.output.contains("take no other argument"), "\(wrong.output)")
        }
    }
}
