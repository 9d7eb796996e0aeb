import CLinux
import Foundation
import Glibc
import Testing

/// Per-pipe settings and figures as extended attributes, and `npfs status`.
@Suite(.serialized) struct AttributeTests {
    @Test func getfattrDumpsEverySettingAndFigure() throws {
        try TestMount.with { mount in
            let fd = open(mount.path("P"), O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            #expect(Sys.write(fd, Array("hello".utf8)) == .ok(5))
            #expect(Sys.read(fd, 2) == .bytes(Array("he".utf8)))
            let dump = try ChildProcess.run(["getfattr", "--absolute-names", "-d", "-m", "-", mount.path("P")], timeout: 5)
            let lines = dump.output.split(separator: "\n").filter { $0.hasPrefix("user.npfs.") }.map(String.init)
            #expect(lines == ["user.npfs.buffered=\"3\"", "user.npfs.bytes_read=\"2\"", "user.npfs.bytes_written=\"5\"",
                              "user.npfs.capacity=\"65536\"", "user.npfs.delivery=\"shared\"", "user.npfs.dropped=\"0\"", "user.npfs.framing=\"stream\"",
                              "user.npfs.mode=\"fifo\"", "user.npfs.open_timeout=\"0\"", "user.npfs.overflow=\"drop\"", "user.npfs.persist=\"off\"", "user.npfs.readers=\"1\"",
                              "user.npfs.writers=\"1\""], "\(dump.output)")
        }
    }

    /// A waiting write holds its file's inode lock in the kernel, and setxattr on that file
    /// needs the lock: the change goes through the mount root's attribute for the pipe.
    @Test func growingTheCapacityLetsABlockedWriterFinish() throws {
        try TestMount.with { mount in
            let path = mount.path("GROW")
            let reader = open(path, O_RDONLY | O_NONBLOCK)
            #expect(reader >= 0)
            defer { close(reader) }
            let filler = open(path, O_WRONLY)
            #expect(Sys.write(filler, [UInt8](repeating: 1, count: 65_536)) == .ok(65_536))
            close(filler)
            let writer = try ChildProcess(["/bin/sh", "-c", "head -c 10000 /dev/zero > '\(path)'"])
            #expect(eventually { writer.state == "S" || writer.state == nil })
            usleep(200_000)
            #expect(writer.isRunning, "the pipe is full: the writer waits")
            let set = try ChildProcess.run(["setfattr", "-n", "user.npfs.pipe.GROW.capacity", "-v", "128K", mount.directory], timeout: 5)
            #expect(set.status == 0, "\(set.output)")
            #expect(writer.wait(timeout: 5) == 0)
            #expect(try getfattr(path, "user.npfs.buffered") == "75536")
            #expect(try getfattr(path, "user.npfs.capacity") == "131072")
            #expect(try getfattr(mount.directory, "user.npfs.pipe.GROW.capacity") == "131072")
        }
    }

    @Test func rootAttributesNameAPipe() throws {
        try TestMount.with { mount throws in
            #expect(getxattrErrno(mount.directory, "user.npfs.pipe.NONE.buffered") == ENOENT)
            let fd = open(mount.path("a.b"), O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            #expect(setxattrErrno(mount.directory, "user.npfs.pipe.a.b.mode", "ring") == 0, "the name may hold dots")
            #expect(try getfattr(mount.path("a.b"), "user.npfs.mode") == "ring")
            #expect(getxattrErrno(mount.directory, "user.npfs.pipe.a.b.bogus") == ENODATA)
            #expect(setxattrErrno(mount.directory, "user.npfs.pipe.a.b.readers", "2") == EPERM)
        }
    }

    @Test func switchingToRingReleasesABlockedReader() throws {
        try TestMount.with { mount in
            let path = mount.path("RELEASE")
            let cat = try ChildProcess(["/bin/sh", "-c", "exec 3<>'\(path)'; exec cat '\(path)'"])
            #expect(eventually { cat.state == "S" && livePipes(mount) == ["RELEASE"] })
            usleep(100_000)
            #expect(cat.isRunning)
            #expect(try ChildProcess.run(["setfattr", "-n", "user.npfs.mode", "-v", "ring", path], timeout: 5).status == 0)
            #expect(cat.wait(timeout: 5) == 0, "the waiting read returned (empty): end of file for cat")
        }
    }

    @Test func everyErrorCase() throws {
        try TestMount.with { mount throws in
            let path = mount.path("ERR")
            // Not live: ENOENT.
            #expect(getxattrErrno(path, "user.npfs.buffered") == ENOENT)
            #expect(setxattrErrno(path, "user.npfs.capacity", "128K") == ENOENT)
            let fd = open(path, O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            #expect(Sys.write(fd, [UInt8](repeating: 1, count: 10_000)) == .ok(10_000))
            #expect(setxattrErrno(path, "user.npfs.capacity", "8K") == EBUSY, "below what is buffered")
            #expect(setxattrErrno(path, "user.npfs.capacity", "1") == EINVAL)
            #expect(setxattrErrno(path, "user.npfs.capacity", "lots") == EINVAL)
            #expect(setxattrErrno(path, "user.npfs.mode", "pipe") == EINVAL)
            #expect(setxattrErrno(path, "user.npfs.overflow", "spill") == EINVAL)
            #expect(setxattrErrno(path, "user.npfs.framing", "message") == EBUSY, "framing of a non-empty pipe")
            #expect(getxattrErrno(path, "user.npfs.bogus") == ENODATA)
            #expect(setxattrErrno(path, "user.npfs.bogus", "1") == ENODATA)
            #expect(setxattrErrno(path, "user.npfs.readers", "3") == EPERM)
            #expect(setxattrErrno(path, "user.npfs.bytes_read", "0") == EPERM)
            #expect(getxattrErrno(path, "user.other") == ENODATA)
            // No ACLs, no security labels: not supported, which `ls -l` remembers per mount.
            for name in ["security.selinux", "system.posix_acl_access", "system.posix_acl_default", "trusted.x"] {
                #expect(getxattrErrno(path, name) == EOPNOTSUPP, "\(name)")
                #expect(getxattrErrno(mount.directory, name) == EOPNOTSUPP, "\(name) on the root")
            }
            // npfs's names cannot be removed, where they exist; no other user. name exists.
            #expect(removexattrErrno(path, "user.npfs.capacity") == EPERM)
            #expect(removexattrErrno(path, "user.npfs.peek") == EPERM)
            #expect(removexattrErrno(mount.directory, "user.npfs.pid") == EPERM)
            #expect(removexattrErrno(mount.directory, "user.npfs.pipe.ERR.mode") == EPERM)
            #expect(removexattrErrno(path, "user.npfs.pid") == ENODATA, "a pipe has no daemon pid")
            #expect(removexattrErrno(path, "user.other") == ENODATA)
            #expect(removexattrErrno(path, "security.selinux") == EOPNOTSUPP)
            // And the good cases still work afterwards.
            #expect(setxattrErrno(path, "user.npfs.capacity", "16K") == 0)
            #expect(setxattrErrno(path, "user.npfs.overflow", "overwrite") == 0)
            #expect(try getfattr(path, "user.npfs.capacity") == "16384")
        }
    }

    @Test func statusShowsEveryLivePipeInBothForms() throws {
        try TestMount.with { mount in
            let alpha = open(mount.path("alpha"), O_RDWR)
            let beta = open(mount.path("beta"), O_RDWR)
            let reader = open(mount.path("beta"), O_RDONLY)
            defer { [alpha, beta, reader].forEach { close($0) } }
            #expect(Sys.write(alpha, Array("hello\n".utf8)) == .ok(6))
            #expect(setxattrErrno(mount.path("beta"), "user.npfs.mode", "ring") == 0)
            #expect(Sys.write(beta, [UInt8](repeating: 2, count: 70_000)) == .ok(70_000))
            let before = try figures(mount)

            let table = try ChildProcess.run([TestMount.binary, "status", mount.directory], timeout: 10)
            #expect(table.status == 0)
            let rows = table.output.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            #expect(table.output.hasPrefix("pipes 2/16384 (yours 2/16384), memory 132608/"), "the usage line first: \(table.output)")
            #expect(rows.first == ["NAME", "MODE", "FRAMING", "DELIVERY", "READERS", "WRITERS", "BUFFERED/CAPACITY", "BYTES", "IN", "BYTES", "OUT", "DROPPED"])
            #expect(rows.dropFirst().first == ["alpha", "fifo", "stream", "shared", "1", "1", "6/65536", "6", "0", "0"], "\(table.output)")
            #expect(rows.dropFirst(2).first == ["beta", "ring/drop", "stream", "shared", "2", "1", "65536/65536", "70000", "0", "4464"], "\(table.output)")
            // Columns line up: every row is as wide up to BUFFERED/CAPACITY's end.
            let lines = table.output.split(separator: "\n").dropFirst().map(String.init)
            let end = lines[0].range(of: "BUFFERED/CAPACITY")!.upperBound.utf16Offset(in: lines[0])
            #expect(lines.dropFirst().allSatisfy { $0.count >= end && $0[$0.index($0.startIndex, offsetBy: end - 1)] != " " })

            let json = try ChildProcess.run([TestMount.binary, "status", "--json", mount.directory], timeout: 10)
            #expect(json.status == 0)
            let report = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
            let parsed = report?["pipes"] as? [[String: Any]]
            let usage = report?["usage"] as? [String: Int]
            #expect(usage?["pipes"] == 2 && usage?["memory"] == 131_072 + 3 * 512 && usage?["max_pipes"] == 16_384, "\(json.output)")
            #expect(parsed?.count == 2)
            #expect(parsed?.first?["name"] as? String == "alpha")
            #expect(parsed?.last?["dropped"] as? Int == 4464)
            #expect(parsed?.last?["overflow"] as? String == "drop")
            #expect(parsed?.last?["delivery"] as? String == "shared")

            // Reading the status created, held and disturbed nothing.
            #expect(try figures(mount) == before)
            #expect(livePipes(mount) == ["alpha", "beta"])
        }
    }

    @Test func statusOfSomethingElseFails() throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        let result = try ChildProcess.run([TestMount.binary, "status", directory], timeout: 10)
        #expect(result.status != 0)
        #expect(result.output.contains("not an npfs mount"), "\(result.output)")
    }

    /// Every pipe's figures, read directly.
    private func figures(_ mount: TestMount) throws -> [String] {
        try livePipes(mount).flatMap { name in
            try ["readers", "writers", "buffered", "bytes_read", "bytes_written"].map {
                "\(name) \($0) " + (try getfattr(mount.path(name), "user.npfs.\($0)"))
            }
        }
    }
}

/// Issue 8, item 5: `npfs status` reads the table in pages of the mount root's attributes.
@Suite(.serialized) struct StatusTests {
    @Test func statusListsEveryPipeOnceAndAlignsOddNames() throws {
        try TestMount.with { mount in
            let odd = ["new\nline", "名前", "e\u{301}"]
            let names = (0..<1000).map { String(format: "p%04d", $0) } + odd
            let fds = names.map { open(mount.path($0), O_RDWR) }
            defer { fds.forEach { close($0) } }
            #expect(fds.allSatisfy { $0 >= 0 })
            let result = try ChildProcess.run([TestMount.binary, "status", mount.directory], timeout: 30)
            #expect(result.status == 0)
            let lines = result.output.split(separator: "\n").dropFirst().map(String.init)   // after the usage line
            #expect(lines.count == 1 + names.count, "a header and every pipe once")
            #expect(lines.contains { $0.hasPrefix("new\\x0aline ") } && lines.contains { $0.hasPrefix("名前 ") })
            // The MODE column starts at the same column of the terminal on every line.
            _ = setlocale(LC_CTYPE, "C.UTF-8")
            let starts = Set(lines.map { line -> Int in
                let cell = line.range(of: "  MODE") ?? line.range(of: "  fifo")
                return columns(String(line[..<(cell?.lowerBound ?? line.endIndex)]))
            })
            #expect(starts.count == 1, "MODE starts at columns \(starts)")
            let json = try ChildProcess.run([TestMount.binary, "status", mount.directory, "--json"], timeout: 30)
            #expect(json.output.components(separatedBy: "\"name\" :").count - 1 == names.count)
        }
    }
}

/// Issue 8, item 6: `npfs status --watch`, on a terminal and not.
@Suite(.serialized) struct StatusWatchTests {
    /// Through a pseudo-terminal: it redraws in place, shows the busy pipe first with its
    /// rate, and `q` ends it with the terminal as it was.
    @Test func watchRedrawsOnATerminalAndQuitsOnQ() throws {
        try TestMount.with { mount in
            let script = """
                import os, pty, sys, time, select, termios
                mount = sys.argv[1]
                idle = os.open(mount + "/IDLE", os.O_RDWR)
                busy = os.open(mount + "/BUSY", os.O_RDWR)
                pid, fd = pty.fork()
                if pid == 0:
                    os.execvp(sys.argv[2], ["npfs", "status", mount, "--watch", "0.3"])
                out = b""
                end = time.time() + 1.5
                while time.time() < end:
                    os.write(busy, b"x" * 8192)
                    os.read(busy, 8192)
                    r, _, _ = select.select([fd], [], [], 0.05)
                    if r:
                        out += os.read(fd, 65536)
                raw = not (termios.tcgetattr(fd)[3] & termios.ICANON)
                os.write(fd, b"q")
                start = time.time()
                _, status = os.waitpid(pid, 0)
                try:
                    while select.select([fd], [], [], 0.2)[0]:
                        out += os.read(fd, 65536)
                except OSError:
                    pass
                restored = bool(termios.tcgetattr(fd)[3] & termios.ICANON)
                last = out.decode(errors="replace").split("\\x1b[H\\x1b[2J")[-1]
                rows = [l for l in last.splitlines() if l.startswith(("BUSY", "IDLE"))]
                print("exit", os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1, "quick", time.time() - start < 1,
                      "redraws", out.count(b"\\x1b[H\\x1b[2J"), "raw", raw, "restored", restored)
                print("first", rows[0].split()[0] if rows else "-", "rate", rows[0].split()[5] if rows else "-")
                """
            let result = try ChildProcess.run(["python3", "-c", script, mount.directory, TestMount.binary], timeout: 20)
            let lines = result.output.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("exit 0 quick True redraws ") == true && lines.first?.hasSuffix(" raw True restored True") == true,
                    "\(result.output)")
            let redraws = Int(lines.first?.split(separator: " ").dropFirst(5).first ?? "") ?? 0
            #expect(redraws >= 3, "redrawn about every 0.3 s: \(result.output)")
            #expect(lines.dropFirst().first?.hasPrefix("first BUSY rate ") == true && lines.dropFirst().first?.hasSuffix("rate 0") == false,
                    "the busy pipe first, with a rate: \(result.output)")
        }
    }

    /// Issue 12, item 17: on a terminal shorter and narrower than the list, the usage line
    /// and the header stay, pipes are cut with "+N more", a 200-byte name is cut with an
    /// ellipsis, and no line is wider than the screen.
    @Test func watchFitsTheScreen() throws {
        try TestMount.with { mount in
            let script = """
                import os, pty, sys, time, select, fcntl, termios, struct
                mount = sys.argv[1]
                held = [os.open(mount + "/P%02d" % i, os.O_RDWR) for i in range(30)]
                held.append(os.open(mount + "/" + "L" * 200, os.O_RDWR))
                pid, fd = pty.fork()
                if pid == 0:
                    fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", 12, 70, 0, 0))
                    os.execvp(sys.argv[2], ["npfs", "status", "--watch", "0.2", mount])
                out = b""
                end = time.time() + 1.2
                while time.time() < end:
                    r, _, _ = select.select([fd], [], [], 0.05)
                    if r:
                        out += os.read(fd, 65536)
                os.write(fd, b"q")
                os.waitpid(pid, 0)
                frame = out.decode(errors="replace").split("\\x1b[H\\x1b[2J")[-1].split("\\x1b[?25h")[0]
                lines = frame.replace("\\r", "").split("\\n")
                print("lines", len(lines), "widest", max(len(l) for l in lines))
                print("first", lines[0].split()[0], "header", lines[1].split()[0])
                print("more", [l for l in lines if l.startswith("+")])
                print("pipes", len([l for l in lines if l.startswith(("P", "L"))]))
                print("cut", any(l.startswith("LLLL") and "\\u2026" in l for l in lines))
                """
            let result = try ChildProcess.run(["python3", "-c", script, mount.directory, TestMount.binary], timeout: 20)
            let lines = result.output.split(separator: "\n").map(String.init)
            guard lines.count == 5 else { Issue.record("\(result.output.prefix(600))"); return }
            let counts = lines[0].split(separator: " ")
            #expect(Int(counts[1]).map { $0 <= 12 } == true, "fits 12 rows: \(result.output)")
            #expect(Int(counts[3]).map { $0 <= 70 } == true, "fits 70 columns: \(result.output)")
            #expect(lines[1] == "first pipes header NAME", "\(result.output)")
            let shown = Int(lines[3].split(separator: " ").last ?? "") ?? -1
            #expect(lines[2] == "more ['+\(31 - shown) more']" && shown > 0, "\(result.output)")
            #expect(lines[4] == "cut True" || shown < 31, "\(result.output)")
        }
    }

    /// Not on a terminal: a table per interval, until a signal ends it.
    @Test func watchPrintsATablePerIntervalWhenNotOnATerminal() throws {
        try TestMount.with { mount in
            let fd = open(mount.path("P"), O_RDWR)
            defer { close(fd) }
            let watch = try ChildProcess([TestMount.binary, "status", mount.directory, "--watch", "0.2"])
            #expect(eventually { watch.output.components(separatedBy: "== ").count > 3 })
            #expect(watch.signal(SIGTERM))
            #expect(watch.wait(timeout: 5) == 0)
            #expect(watch.output.contains("NAME  MODE  FRAMING  DELIVERY  READERS  WRITERS") && !watch.output.contains("\u{1B}["), "\(watch.output.prefix(400))")
            #expect(!watch.output.contains("every "), "the interval line is for a terminal")
            for bad in [["--watch", "0"], ["--watch", "--json"], ["2"], ["--watch=x"]] {
                let result = try ChildProcess.run([TestMount.binary, "status", mount.directory] + bad, timeout: 10)
                #expect(result.status != 0 && result.output.split(separator: "\n").count == 1, "\(bad): \(result.output)")
            }
            // Issue 12, item 16: the interval before the mount point (as `watch -n`), and `--watch=`.
            for arguments in [["--watch", "0.2", mount.directory], ["--watch=0.2", mount.directory], [mount.directory, "--watch=0.2"]] {
                let other = try ChildProcess([TestMount.binary, "status"] + arguments)
                #expect(eventually { other.output.components(separatedBy: "== ").count > 2 }, "\(arguments): \(other.output.prefix(300))")
                #expect(other.signal(SIGTERM))
                #expect(other.wait(timeout: 5) == 0, "\(arguments)")
            }
        }
    }
}

/// The columns a terminal gives `text` (wcwidth of each character).
private func columns(_ text: String) -> Int {
    text.unicodeScalars.reduce(0) { $0 + max(0, Int(npfs_wcwidth($1.value))) }
}
