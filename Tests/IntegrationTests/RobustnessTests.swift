import CLinux
import Foundation
import Glibc
import Testing

/// Nothing a client sends may take the mount down or leave a request waiting forever.
@Suite(.serialized) struct RobustnessTests {
    /// Issue 6, defects 1 and 2: settings that once aborted the daemon ("trap invalid
    /// opcode") or wedged every reader and writer behind a message that could never fit.
    @Test func settingsAroundAWaitingMessageNeitherCrashNorWedge() throws {
        try TestMount.with { mount in
            let m = mount.directory
            let holder = try ChildProcess(["/bin/bash", "-c", """
                exec 3<>'\(m)/C'
                setfattr -n user.npfs.framing -v message '\(m)/C' || exit 2
                head -c 3000 /dev/zero >&3 || exit 3
                exec sleep 60
                """])
            defer { holder.signal(SIGKILL) }
            #expect(eventually { (try? getfattr(mount.path("C"), "user.npfs.buffered")) == "3000" })
            let writer = try ChildProcess(["dd", "if=/dev/zero", "of=\(m)/C", "bs=63000", "count=1", "status=none"])
            defer { writer.signal(SIGKILL) }
            usleep(300_000)
            #expect(writer.isRunning, "63000 more bytes do not fit: the message waits")
            // The shrink would strand the waiting message: refused.
            #expect(setxattrErrno(m, "user.npfs.pipe.C.capacity", "4K") == EBUSY)
            #expect(setxattrErrno(m, "user.npfs.pipe.C.overflow", "overwrite") == 0)
            #expect(setxattrErrno(m, "user.npfs.pipe.C.mode", "ring") == 0)
            #expect(writer.wait(timeout: 5) == 0, "ring mode took the message: \(writer.output)")
            #expect(mount.daemon.isRunning, "the daemon survived: \(mount.daemon.output)")
            #expect(try getfattr(mount.path("C"), "user.npfs.dropped") == "3000")
            #expect(try getfattr(mount.path("C"), "user.npfs.buffered") == "63000")
            #expect(livePipes(mount) == ["C"])
        }
    }

    /// Issue 6, defect 4: limits answer their errno, and the daemon serves on.
    @Test func limitsAnswerTheirErrnoAndTheDaemonServesOn() throws {
        // 256K in all: three 64K pipes, then 64K of waiting writes.
        try TestMount.with(options: ["max_pipes=3,max_memory=256K"]) { mount in
            var fds = ["A", "B", "C"].map { open(mount.path($0), O_RDWR) }
            defer { fds.filter { $0 >= 0 }.forEach { close($0) } }
            #expect(fds.allSatisfy { $0 >= 0 })
            #expect(open(mount.path("D"), O_RDWR) == -1 && errno == ENFILE, "max_pipes")
            close(fds.removeLast())
            #expect(eventually { livePipes(mount) == ["A", "B"] })
            #expect(try ChildProcess.run([TestMount.binary, "set", mount.path("A"), "capacity=128K"], timeout: 10).status == 0)
            let tooBig = try ChildProcess.run([TestMount.binary, "set", mount.path("B"), "capacity=192K"], timeout: 10)
            #expect(tooBig.status != 0 && tooBig.output.contains("no space"), "\(tooBig.output)")
            #expect(setxattrErrno(mount.directory, "user.npfs.pipe.B.capacity", "192K") == ENOSPC)
            // Waiting writes: 64K of copies at most.
            #expect(Sys.write(fds[0], [UInt8](repeating: 1, count: 131_072)) == .ok(131_072))
            let waiting = try ChildProcess(["dd", "if=/dev/zero", "of=\(mount.path("A"))", "bs=50000", "count=1", "conv=notrunc", "status=none"])
            defer { waiting.signal(SIGKILL) }
            // Waiting in the daemon, its bytes counted (a sleeping dd may not have written yet:
            // then the next write took the budget first and waited itself).
            #expect(eventually {
                (try? ChildProcess.run([TestMount.binary, "status", mount.directory], timeout: 10))?.output.contains("waiting writes 50000") == true
            })
            let refused = try ChildProcess.run(["dd", "if=/dev/zero", "of=\(mount.path("A"))", "bs=50000", "count=1", "conv=notrunc",
                                                "status=none"], timeout: 10)
            #expect(refused.status != 0 && refused.output.contains("No buffer space available"), "\(refused.output)")
            #expect(waiting.isRunning)
            let status = try ChildProcess.run([TestMount.binary, "status", mount.directory], timeout: 10)
            // 192K of capacity and three opens (A, B and the waiting dd's) of 512 bytes.
            #expect(status.output.hasPrefix("pipes 2/3 (yours 2/3), memory 198144/256K"), "\(status.output)")
            #expect(status.output.contains("waiting writes 50000 (yours 50000/64K)"), "\(status.output)")
            #expect(Sys.read(fds[0], 1 << 20) == .bytes([UInt8](repeating: 1, count: 131_072) + [UInt8](repeating: 0, count: 50_000)))
            #expect(waiting.wait(timeout: 5) == 0)
            #expect(mount.daemon.isRunning)
        }
    }

    /// Issue 6, defect 4: a million stat()s of distinct names once held a million names
    /// in the daemon; it now asks the kernel to forget the oldest idle ones.
    @Test func namesLookedUpButNeverOpenedStayBounded() throws {
        try TestMount.with(options: ["max_idle_names=50"]) { mount in
            var info = stat()
            for index in 0..<3000 { #expect(stat(mount.path("N\(index)"), &info) == 0) }
            let usage = { (try? xattr(mount.directory, "user.npfs.usage")).map { String(decoding: $0, as: UTF8.self) } ?? "" }
            #expect(eventually { usage().contains("\nidle_names=50\n") || usage().contains("\nidle_names=49\n") }, "\(usage())")
            #expect(stat(mount.path("N0"), &info) == 0, "a forgotten name is a name all the same")
            #expect(mount.daemon.isRunning)
        }
    }

    /// Issue 6, item 5: memory follows use. A large buffer read empty is freed while its
    /// pipe is still open, many pipes' buffers when they close, and the daemon gives the
    /// memory back to the system: its resident size falls back near where it started.
    @Test func residentMemoryFallsBackAfterTheLoad() throws {
        try TestMount.with { mount throws in
            let rss = { residentKiB(mount.daemon.pid) }
            let baseline = rss()
            let big = open(mount.path("BIG"), O_RDWR)
            defer { close(big) }
            #expect(try ChildProcess.run([TestMount.binary, "set", mount.path("BIG"), "capacity=128M"], timeout: 10).status == 0)
            let chunk = [UInt8](repeating: 7, count: 1 << 20)
            for _ in 0..<128 { #expect(Sys.write(big, chunk) == .ok(1 << 20)) }
            let peak = rss()
            #expect(peak > baseline + 100_000, "128 MiB buffered: \(baseline) KiB -> \(peak) KiB")
            var drained = 0
            while drained < 128 << 20, case .bytes(let bytes) = Sys.read(big, 1 << 20), !bytes.isEmpty { drained += bytes.count }
            #expect(drained == 128 << 20)
            #expect(eventually(timeout: 5) { rss() < baseline + 16_384 }, "drained: \(baseline) KiB -> \(peak) KiB -> \(rss()) KiB")
            // Many small buffers, freed by their last close.
            let fds = (0..<1000).map { open(mount.path("P\($0)"), O_RDWR) }
            for fd in fds { #expect(Sys.write(fd, [UInt8](repeating: 1, count: 65_536)) == .ok(65_536)) }
            let many = rss()
            fds.forEach { close($0) }
            #expect(eventually(timeout: 5) { rss() < baseline + 16_384 }, "closed: \(baseline) KiB -> \(many) KiB -> \(rss()) KiB")
        }
    }

    /// Issue 6, defect 5: the root route names a pipe by its bytes.
    @Test func rootAttributesNamePipesByTheirBytes() throws {
        try TestMount.with { mount in
            let invalid: [UInt8] = [0xFF], replacement: [UInt8] = [0xEF, 0xBF, 0xBD]
            let fds = [invalid, replacement].map { name in
                rawOpen(Array(mount.directory.utf8) + [UInt8(ascii: "/")] + name, O_RDWR)
            }
            defer { fds.forEach { close($0) } }
            #expect(fds.allSatisfy { $0 >= 0 })
            let attribute = Array("user.npfs.pipe.".utf8) + invalid + Array(".capacity".utf8)
            #expect(rawSetxattr(Array(mount.directory.utf8), attribute, Array("1M".utf8)) == 0)
            #expect(rawGetxattr(Array(mount.directory.utf8) + [UInt8(ascii: "/")] + invalid, "user.npfs.capacity") == "1048576")
            #expect(rawGetxattr(Array(mount.directory.utf8) + [UInt8(ascii: "/")] + replacement, "user.npfs.capacity") == "65536")
        }
    }
}

/// open(2) of a path given as bytes (which need not be UTF-8).
func rawOpen(_ path: [UInt8], _ flags: Int32) -> Int32 {
    (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { Glibc.open($0.baseAddress!, flags | O_CLOEXEC) }
}

/// A process's resident memory in KiB (VmRSS), 0 if it cannot be read.
func residentKiB(_ pid: pid_t) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
}
