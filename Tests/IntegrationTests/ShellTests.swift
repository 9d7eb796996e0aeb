import Foundation
import Glibc
import Testing

/// npfs driven as people use it: shells, coreutils and real processes.
@Suite(.serialized) struct ShellTests {
    @Test func readerFirstThenWriter() throws {
        try TestMount.with { mount in
            let cat = try ChildProcess(["cat", mount.path("HELLO")])
            // The pipe is live (listed) while cat waits in open for a writer.
            #expect(eventually { livePipes(mount) == ["HELLO"] })
            #expect(cat.isRunning)
            let echo = try ChildProcess.shell("echo hello > '\(mount.path("HELLO"))'", timeout: 10)
            #expect(echo.status == 0)
            #expect(cat.wait(timeout: 10) == 0)
            #expect(cat.output == "hello\n")
            // The last release frees the pipe: `ls` no longer shows it.
            #expect(eventually { livePipes(mount).isEmpty })
        }
    }

    @Test func writerFirstThenReader() throws {
        try TestMount.with { mount in
            let writer = try ChildProcess(["/bin/sh", "-c", "echo hello > '\(mount.path("HELLO"))'"])
            #expect(eventually { livePipes(mount) == ["HELLO"] })
            #expect(writer.isRunning, "the writer waits in open for a reader")
            let cat = try ChildProcess.run(["cat", mount.path("HELLO")], timeout: 10)
            #expect(cat.output == "hello\n")
            #expect(writer.wait(timeout: 10) == 0)
            #expect(eventually { livePipes(mount).isEmpty })
        }
    }

    @Test func severalLinesThroughOneDescriptorThenEndOfFile() throws {
        try TestMount.with { mount in
            let path = mount.path("LINES")
            let cat = try ChildProcess(["cat", path])
            let writer = try ChildProcess.shell("exec 3>'\(path)'; echo one >&3; sleep 0.2; echo two >&3", timeout: 10)
            #expect(writer.status == 0)
            #expect(cat.wait(timeout: 10) == 0)
            #expect(cat.output == "one\ntwo\n")
        }
    }

    /// Regular files whose size is 2 GiB plus the bytes written so far, in whole pages (see the README):
    /// what is buffered is in `user.npfs.buffered`.
    @Test func listingShowsRegularFilesSizedByWhatWasWritten() throws {
        try TestMount.with { mount in
            let fd = open(mount.path("SIZED"), O_RDWR)
            #expect(fd >= 0)
            defer { if fd >= 0 { close(fd) } }
            #expect(Sys.write(fd, Array("12345".utf8)) == .ok(5))
            let ls = try ChildProcess.run(["ls", "-l", mount.directory])
            let line = ls.output.split(separator: "\n").first { $0.hasSuffix(" SIZED") }.map(String.init) ?? ""
            #expect(line.hasPrefix("-rw-rw-rw-"), "\(ls.output)")
            #expect(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first == "2147487744", "\(line)")
            #expect(Sys.read(fd, 2) == .bytes(Array("12".utf8)))
            #expect(try ChildProcess.run(["stat", "-c", "%s %b %F", mount.path("SIZED")]).output == "2147487744 0 regular file\n",
                    "reading does not shrink it")
            #expect(try getfattr(mount.path("SIZED"), "user.npfs.buffered") == "3")
            close(fd)
            #expect(eventually { livePipes(mount).isEmpty })
        }
    }

    /// Issue 6, item 9: `tail -f` follows one writer after another, as on a kernel FIFO,
    /// and never decides the file was truncated.
    @Test func tailFollowsTwoWritersInTurn() throws {
        try TestMount.with { mount in
            let p = mount.path("LOG")
            let tail = try ChildProcess(["tail", "-s", "0.1", "-f", p])
            defer { tail.signal(SIGKILL) }
            #expect(eventually { livePipes(mount) == ["LOG"] }, "tail waits in open for a writer")
            #expect(try ChildProcess.shell("echo one > '\(p)'", timeout: 10).status == 0)
            #expect(eventually { tail.output == "one\n" })
            usleep(300_000)   // tail has seen the first writer go and polls again
            #expect(try ChildProcess.shell("echo two > '\(p)'", timeout: 10).status == 0)
            #expect(eventually { tail.output == "one\ntwo\n" }, "\(tail.output)")
            #expect(try ChildProcess.shell("echo three >> '\(p)'", timeout: 10).status == 0)
            #expect(eventually { tail.output == "one\ntwo\nthree\n" }, "\(tail.output)")
            #expect(tail.isRunning, "tail still follows: \(tail.output)")
        }
    }

    /// Issue 6, item 9: the kernel runs a write with the inode lock shared while it ends
    /// below the size it knows, so a second writer, of any size, waits in npfs behind a
    /// waiting first one (state S: a signal ends it), not on the lock (state D: nothing does).
    @Test func aSecondLargeWriterWaitsInterruptiblyBehindAWaitingOne() throws {
        try TestMount.with { mount in
            let p = mount.path("BIG")
            let reader = open(p, O_RDONLY | O_NONBLOCK)
            defer { close(reader) }
            let first = try ChildProcess(["dd", "if=/dev/zero", "of=\(p)", "bs=1M", "count=1", "conv=notrunc", "status=none"])
            defer { first.signal(SIGKILL) }
            #expect(eventually { (try? getfattr(p, "user.npfs.buffered")) == "65536" })
            let second = try ChildProcess(["dd", "if=/dev/zero", "of=\(p)", "bs=3M", "count=1", "conv=notrunc", "status=none"])
            defer { second.signal(SIGKILL) }
            usleep(300_000)
            #expect(second.state == "S", "the second writer waits in npfs, interruptibly (state \(second.state ?? "gone"))")
            second.signal(SIGTERM)
            #expect(second.wait(timeout: 5) == 128 + SIGTERM, "a signal ends it at once")
            #expect(first.isRunning)
        }
    }

    @Test func writerWithoutReadersGetsEPIPENotSIGPIPE() throws {
        try TestMount.with { mount in
            let path = mount.path("BROKEN")
            let reader = try ChildProcess(["head", "-c", "5", path])
            let yes = try ChildProcess(["/bin/sh", "-c", "exec yes > '\(path)'"])
            #expect(reader.wait(timeout: 10) == 0)
            #expect(reader.output == "y\ny\ny")
            // A kernel FIFO would kill yes with SIGPIPE (status 141); FUSE can only say EPIPE.
            #expect(yes.wait(timeout: 10) == 1)
            #expect(yes.output.contains("Broken pipe"))
        }
    }

    @Test func fourConcurrentWritersNeverInterleavePipeBufRecords() throws {
        try TestMount.with { mount in
            let path = mount.path("RECORDS")
            let records = 200
            let reader = open(path, O_RDWR)   // keeps a writer so end of file cannot cut the test short
            #expect(reader >= 0)
            defer { close(reader) }
            let writers = try ["A", "B", "C", "D"].map { letter in
                try ChildProcess(["/bin/sh", "-c",
                    "head -c \(records * 4096) /dev/zero | tr '\\0' '\(letter)' | dd of='\(path)' bs=4096 iflag=fullblock status=none"])
            }
            let data = try readExactly(reader, count: 4 * records * 4096, timeout: 30)
            for writer in writers { #expect(writer.wait(timeout: 10) == 0, "\(writer.output)") }
            var counts: [UInt8: Int] = [:]
            for record in stride(from: 0, to: data.count, by: 4096) {
                let first = data[record]
                let whole = data[record..<(record + 4096)].allSatisfy { $0 == first }
                #expect(whole, "record \(record / 4096) mixes writers")
                if !whole { break }
                counts[first, default: 0] += 1
            }
            #expect(counts == [0x41: records, 0x42: records, 0x43: records, 0x44: records])
        }
    }

    @Test func twoHundredFiftySixMebibytesArriveIntact() throws {
        try TestMount.with { mount in
            let path = mount.path("STREAM")
            let sums = try makeTemporaryDirectory()
            defer { _ = try? FileManager.default.removeItem(atPath: sums) }
            let reader = try ChildProcess(["/bin/sh", "-c", "sha256sum < '\(path)' > '\(sums)/read'"])
            let writer = try ChildProcess(["/bin/bash", "-c",
                "set -o pipefail; head -c 268435456 /dev/urandom | tee >(sha256sum > '\(sums)/written') > '\(path)'"])
            #expect(writer.wait(timeout: 240) == 0, "\(writer.output)")
            #expect(reader.wait(timeout: 60) == 0, "\(reader.output)")
            #expect(eventually { FileManager.default.fileExists(atPath: sums + "/written") })
            let written = try String(contentsOfFile: sums + "/written", encoding: .utf8)
            let read = try String(contentsOfFile: sums + "/read", encoding: .utf8)
            let hash = { (line: String) in line.split(separator: " ").first.map(String.init) ?? "" }
            #expect(hash(written).count == 64)
            #expect(hash(written) == hash(read), "written \(written) read \(read)")
        }
    }

    /// The kernel splits a read(2) into requests of at most 256 pages of the caller's
    /// buffer. A pipe read returns what is there, so when the first request took it all,
    /// the next one (offset > 0) must answer at once, not wait for more.
    @Test func readLargerThanOneRequestReturnsWhatIsBuffered() throws {
        try TestMount.with(options: ["capacity=2M"]) { mount in
            let fd = open(mount.path("BIG"), O_RDWR)   // a writer exists: an empty read would wait
            #expect(fd >= 0)
            defer { close(fd) }
            let oneRequest = 1 << 20   // 256 pages of a page-aligned buffer
            try [UInt8](repeating: 5, count: oneRequest).withUnsafeBytes { try Sys.writeAll(fd, $0) }
            let reading = BlockingCall {
                var buffer: UnsafeMutableRawPointer?
                guard posix_memalign(&buffer, 4096, 3 << 20) == 0, let buffer else { return .error(ENOMEM) }
                defer { free(buffer) }
                let n = read(fd, buffer, 3 << 20)
                return n >= 0 ? .ok(n) : .error(errno)
            }
            #expect(reading.wait(timeout: 5) == .ok(oneRequest), "a read with data buffered must not wait")
            _ = reading.interrupt()
        }
    }

    /// One write(2) of 4 MiB (four kernel requests) returns its full count once all is taken.
    @Test func blockingWriteOfFourMebibytesReturnsItsFullCount() throws {
        try TestMount.with { mount in
            let path = mount.path("HUGE")
            let reader = try ChildProcess(["/bin/sh", "-c", "wc -c < '\(path)'"])
            let fd = open(path, O_WRONLY)
            #expect(fd >= 0)
            let writing = BlockingCall { Sys.write(fd, [UInt8](repeating: 9, count: 4 << 20)) }
            #expect(writing.wait(timeout: 30) == .ok(4 << 20))
            close(fd)
            #expect(reader.wait(timeout: 10) == 0)
            #expect(reader.output.trimmingCharacters(in: .whitespacesAndNewlines) == "4194304")
        }
    }

    @Test func ctrlCEndsACatWaitingToOpen() throws {
        try TestMount.with { mount in
            let cat = try ChildProcess(["cat", mount.path("WAITING")])
            #expect(eventually { livePipes(mount) == ["WAITING"] && cat.state == "S" })
            let start = Date()
            cat.signal(SIGINT)
            #expect(cat.wait(timeout: 1) == 128 + SIGINT)
            #expect(Date().timeIntervalSince(start) < 1)
            // The interrupted open changed nothing: no pipe is left.
            #expect(eventually { livePipes(mount).isEmpty })
        }
    }

    /// Ctrl-C typed on a terminal: the tty driver sends SIGINT to the foreground process group.
    @Test func ctrlCOnATerminalEndsABlockedCat() throws {
        try TestMount.with { mount in
            let script = """
                import os, pty, sys, time
                pid, fd = pty.fork()
                if pid == 0:
                    os.execvp("cat", ["cat", sys.argv[1]])
                time.sleep(0.5)
                os.write(fd, b"\\x03")
                start = time.time()
                _, status = os.waitpid(pid, 0)
                print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit", round(time.time() - start, 3))
                """
            let result = try ChildProcess.run(["python3", "-c", script, mount.path("TTY")], timeout: 10)
            let words = result.output.split(whereSeparator: \.isWhitespace)
            #expect(words.first == "\(SIGINT)", "\(result.output)")
            #expect((Double(words.last ?? "") ?? 99) < 1, "\(result.output)")
            #expect(eventually { livePipes(mount).isEmpty })
        }
    }

    @Test func ctrlCEndsACatWaitingToRead() throws {
        try TestMount.with { mount in
            let path = mount.path("EMPTY")
            let writer = open(path, O_RDWR)   // a writer exists, so cat's read waits
            #expect(writer >= 0)
            defer { close(writer) }
            let cat = try ChildProcess(["cat", path])
            #expect(eventually { cat.state == "S" })
            usleep(100_000)
            cat.signal(SIGINT)
            #expect(cat.wait(timeout: 1) == 128 + SIGINT)
            // The pipe still works for those left.
            #expect(Sys.write(writer, [7]) == .ok(1))
            #expect(Sys.read(writer, 10) == .bytes([7]))
        }
    }

    @Test func twoThreadsShareOneReadWriteDescriptor() throws {
        try TestMount.with { mount in
            let fd = open(mount.path("SHARED"), O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            let reading = BlockingCall { Sys.read(fd, 100) }
            #expect(reading.wait(timeout: 0.3) == nil, "the read waits for data")
            // A stream file: the write is not held behind the blocked read on the same descriptor.
            let writing = BlockingCall { Sys.write(fd, Array("ping".utf8)) }
            #expect(writing.wait(timeout: 2) == .ok(4))
            #expect(reading.wait(timeout: 2) == .bytes(Array("ping".utf8)))
        }
    }
}

/// The names `ls` shows under the mount.
func livePipes(_ mount: TestMount) -> [String] { livePipes(mount.directory) }

func livePipes(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

/// Reads exactly `count` bytes, waiting at most `timeout` seconds for each part.
func readExactly(_ fd: Int32, count: Int, timeout: Double) throws -> [UInt8] {
    var data = [UInt8]()
    data.reserveCapacity(count)
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while data.count < count {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else {
            throw TestFailure("no data for \(timeout) s after \(data.count) of \(count) bytes")
        }
        let n = read(fd, &buffer, min(buffer.count, count - data.count))
        guard n > 0 else { throw TestFailure("read ended (\(n), \(errnoName(errno))) after \(data.count) bytes") }
        data += buffer[..<n]
    }
    return data
}
