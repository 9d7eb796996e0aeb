import CLinux
import Foundation
import Glibc
import Testing

/// `npfs set` and `npfs get`: the way for people and scripts to change and read a pipe.
@Suite(.serialized) struct SettingsCommandTests {
    @Test func setAndGetRoundTrip() throws {
        try TestMount.with { mount in
            let p = mount.path("P")
            let fd = open(p, O_RDWR)
            defer { close(fd) }
            #expect(Sys.write(fd, Array("hello".utf8)) == .ok(5))
            let set = try npfs(["set", p, "capacity=1M", "mode=ring", "overflow=overwrite"])
            #expect(set.status == 0 && set.output.isEmpty, "\(set.output)")
            #expect(try npfs(["get", p, "capacity"]).output == "1048576\n")
            #expect(try npfs(["get", p, "mode", "buffered"]).output == "mode=ring\nbuffered=5\n")
            let all = try npfs(["get", p]).output.split(separator: "\n")
            #expect(all.count == 13 && all.contains("persist=off") && all.contains("delivery=shared") && all.contains("open_timeout=0") && all.contains("overflow=overwrite") && all.contains("bytes_written=5"), "\(all)")
        }
    }

    /// Issue 12, item 18: errors name what was wrong.
    @Test func errorsNameTheKeyTheRangeAndTheReason() throws {
        try TestMount.with { mount in
            let p = mount.path("P")
            let fd = open(p, O_RDWR)
            defer { close(fd) }
            #expect(Sys.write(fd, Array("hello".utf8)) == .ok(5))
            for (arguments, message) in [
                (["set", p, "capacity=lots"], "npfs: bad capacity 'lots': give bytes with an optional K, M or G, from 4K to 1G\n"),
                (["set", p, "capacity=2G"], "npfs: bad capacity '2G': give bytes with an optional K, M or G, from 4K to 1G\n"),
                (["set", p, "mode=fast"], "npfs: bad mode 'fast': give fifo or ring\n"),
                (["set", p, "delivery=broadcast"], "npfs: \(p): busy: delivery changes only while the pipe is empty and no writer waits\n"),
                (["set", mount.path(String(repeating: "n", count: 300)), "capacity=8K"], "the name is longer than 255 bytes\n"),
            ] {
                let result = try npfs(arguments)
                #expect(result.status != 0 && result.output.hasSuffix(message), "\(arguments): \(result.output)")
            }
            // The root route reaches the unlisted attributes too, for those who may read the pipe.
            #expect(try getfattr(mount.directory, "user.npfs.pipe.P.peek") == "hello")
            #expect(try getfattr(mount.directory, "user.npfs.pipe.P.clients").contains(" access=read-write "))
            var buffer = [UInt8](repeating: 0, count: 64)
            #expect(getxattr(mount.directory, "user.npfs.pipe.NONE.peek", &buffer, buffer.count) == -1 && errno == ENOENT)
        }
    }

    /// Issue 8, item 3: `npfs peek` and `user.npfs.peek` show what the next read returns.
    @Test func peekPrintsTheOldestBytesAndLeavesThem() throws {
        try TestMount.with { mount in
            let p = mount.path("P")
            let fd = open(p, O_RDWR)
            defer { close(fd) }
            #expect(Sys.write(fd, Array("hello\u{0}world".utf8)) == .ok(11))
            #expect(try npfs(["peek", p]).output == "hello\u{0}world", "the bytes as they are")
            #expect(try npfs(["peek", p, "--bytes", "3"]).output == "hel")
            #expect(try getfattr(p, "user.npfs.peek") == "hello\u{0}world")
            #expect(Sys.read(fd, 100) == .bytes(Array("hello\u{0}world".utf8)), "nothing was taken")
            #expect(try npfs(["peek", p]).output == "", "empty")
            for (arguments, message) in [(["peek", p, "--bytes", "0"], "1 to 4096"), (["peek", p, "--bytes", "5000"], "1 to 4096"),
                                         (["peek", mount.path("NONE")], "not a live pipe")] {
                let result = try npfs(arguments)
                #expect(result.status != 0 && result.output.contains(message), "\(arguments): \(result.output)")
            }
        }
    }

    /// Issue 8, item 4: each open names its process; one that exits is gone at its release.
    @Test func clientsAreListedWithTheirPidAndCommandUntilTheyExit() throws {
        try TestMount.with { mount in
            let p = mount.path("P")
            let cat = try ChildProcess(["cat", p])
            #expect(eventually { ((try? getfattr(p, "user.npfs.clients")) ?? "").contains("pid=\(cat.pid) ") })
            let line = try getfattr(p, "user.npfs.clients")
            #expect(line.hasPrefix("pid=\(cat.pid) uid=\(getuid()) access=read waiting=open since=") && line.hasSuffix(" command=cat\n"), "\(line)")
            let table = try npfs(["status", mount.directory, "--clients"]).output
            #expect(table.contains("  \(cat.pid) cat (uid \(getuid())) reads, waiting for a writer, for "), "\(table)")
            let json = try npfs(["status", mount.directory, "--json"]).output
            #expect(json.contains("\"pid\" : \(cat.pid)") && json.contains("\"command\" : \"cat\""), "\(json)")
            #expect(cat.signal(SIGTERM))
            #expect(cat.wait(timeout: 5) != nil)
            #expect(eventually { (try? getfattr(p, "user.npfs.clients")) == nil }, "the pipe is gone with its last client")
            let held = open(p, O_RDWR)
            defer { close(held) }
            #expect(try getfattr(p, "user.npfs.clients").split(separator: "\n").count == 1, "only this test's open")
        }
    }

    @Test func badInputIsOneLineAndNonZero() throws {
        try TestMount.with { mount in
            let p = mount.path("P")
            let fd = open(p, O_RDWR)
            defer { close(fd) }
            #expect(Sys.write(fd, [UInt8](repeating: 1, count: 10_000)) == .ok(10_000))
            let cases: [([String], String)] = [
                (["set", p], "KEY=VALUE"),
                (["set", p, "capacity"], "not KEY=VALUE"),
                (["set", p, "readers=3"], "not KEY=VALUE"),
                (["set", p, "bogus=1"], "not KEY=VALUE"),
                (["set", p, "capacity=lots"], "bad capacity 'lots'"),
                (["set", p, "capacity=8K"], "busy"),
                (["set", p, "mode=pipe"], "bad mode 'pipe'"),
                (["set", mount.path("NONE"), "capacity=1M"], "not a live pipe"),
                (["get", mount.path("NONE")], "not a live pipe"),
                (["get", p, "bogus"], "unknown key"),
                (["get", mount.directory + "/"], "MOUNTPOINT/NAME"),
                (["get", ""], "MOUNTPOINT/NAME"),
                (["get", "/tmp/P"], "not an npfs mount"),
            ]
            for (arguments, fragment) in cases {
                let result = try npfs(arguments)
                #expect(result.status != 0, "\(arguments)")
                #expect(result.output.hasPrefix("npfs: ") && result.output.split(separator: "\n").count == 1,
                        "\(arguments): \(result.output)")
                #expect(result.output.contains(fragment), "\(arguments): \(result.output)")
            }
            #expect(try getfattr(p, "user.npfs.capacity") == "65536", "nothing changed")
        }
    }

    /// A setxattr on the pipe itself would wait for the writer's inode lock; `npfs set` does not.
    @Test func setWorksWhileAWriterWaits() throws {
        try TestMount.with { mount in
            let p = mount.path("FULL")
            let reader = open(p, O_RDONLY | O_NONBLOCK)
            defer { close(reader) }
            let writer = try ChildProcess(["/bin/sh", "-c", "head -c 100000 /dev/zero > '\(p)'"])
            defer { writer.signal(SIGKILL) }
            #expect(eventually { (try? getfattr(p, "user.npfs.buffered")) == "65536" })
            #expect(writer.isRunning, "the pipe is full: the writer waits")
            let set = try npfs(["set", p, "capacity=128K"], timeout: 10)
            #expect(set.status == 0, "\(set.output)")
            #expect(writer.wait(timeout: 5) == 0)
            #expect(try npfs(["get", p, "buffered"]).output == "100000\n")
        }
    }

    /// Names are bytes, up to 255 of them: too long for the root's `user.npfs.pipe.NAME.KEY`,
    /// not UTF-8, or holding a backslash.
    @Test func namesOfAnyLengthAndAnyBytes() throws {
        try TestMount.with { mount in
            let long = String(repeating: "n", count: 255)
            let fds = [open(mount.path(long), O_RDWR),
                       rawOpen(Array(mount.directory.utf8) + Array("/caf\u{e9}-".utf8) + [0xFF], O_RDWR),
                       open(mount.path("back\\slash"), O_RDWR)]
            defer { fds.forEach { close($0) } }
            #expect(fds.allSatisfy { $0 >= 0 })
            #expect(setxattrErrno(mount.directory, "user.npfs.pipe.\(long).capacity", "1M") == ERANGE,
                    "the kernel's 255-byte limit on attribute names")
            #expect(try npfs(["set", mount.path(long), "capacity=1M"]).status == 0)
            #expect(try npfs(["get", mount.path(long), "capacity"]).output == "1048576\n")
            // status shows the byte that is not UTF-8 escaped, in both forms.
            let table = try npfs(["status", mount.directory]).output
            #expect(table.contains("caf\u{e9}-\\xff ") && table.contains("back\\\\slash "), "\(table)")
            let json = try npfs(["status", "--json", mount.directory]).output
            let report = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let names = (report?["pipes"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(names == ["back\\\\slash", "caf\u{e9}-\\xff", long], "\(json)")
            // And the raw name reaches the pipe through npfs get.
            let raw = try ChildProcess.run(["/bin/bash", "-c", "\(TestMount.binary) get $'\(mount.directory)/caf\u{e9}-\\xff' readers"], timeout: 10)
            #expect(raw.output == "1\n", "\(raw.output)")
        }
    }

    private func npfs(_ arguments: [String], timeout: Double = 10) throws -> (status: Int32, output: String) {
        try ChildProcess.run([TestMount.binary] + arguments, timeout: timeout)
    }
}
