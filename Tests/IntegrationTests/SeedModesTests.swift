import CLinux
import Foundation
import Glibc
import Testing

/// Ring mode, overflow, message framing, ignore_case and fstab mounts, under real mounts.
@Suite(.serialized) struct SeedModesTests {
    @Test func seedWorkflowInRingMode() throws {
        try TestMount.with(options: ["mode=ring"]) { mount in
            let path = mount.path("T")
            // One shell keeps the pipe open, as the seed's usedriver kept its handle.
            let holder = try ChildProcess(["/bin/sh", "-c", "exec 3<>'\(path)'; exec sleep 30"])
            defer { holder.signal(SIGTERM) }
            #expect(eventually { livePipes(mount) == ["T"] })
            // Others write and read; nothing waits: a write returns at once, a read of an
            // empty pipe returns end of file at once.
            #expect(try ChildProcess.shell("echo one > '\(path)'; echo two > '\(path)'", timeout: 5).status == 0)
            #expect(try ChildProcess.run(["cat", path], timeout: 5).output == "one\ntwo\n")
            #expect(try ChildProcess.run(["cat", path], timeout: 5).output == "")
            // A writer with no reader at all does not wait either.
            #expect(try ChildProcess.shell("echo lost > '\(mount.path("NOBODY"))'", timeout: 5).status == 0)
        }
    }

    @Test(arguments: ["drop", "overwrite"])
    func overflowIsCountedExactly(_ overflow: String) throws {
        try TestMount.with(options: ["mode=ring,overflow=\(overflow)"]) { mount throws in
            let path = mount.path("FULL")
            let fd = open(path, O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            let data = (0..<102_400).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
            #expect(Sys.write(fd, data) == .ok(102_400), "a ring write reports its full length")
            #expect(try getfattr(path, "user.npfs.dropped") == "36864")
            #expect(try getfattr(path, "user.npfs.buffered") == "65536")
            let expected = overflow == "drop" ? Array(data.prefix(65_536)) : Array(data.suffix(65_536))
            #expect(try readExactly(fd, count: 65_536, timeout: 5) == expected)
            #expect(Sys.read(fd, 10) == .bytes([]), "then empty, at once")
        }
    }

    @Test func messageBoundariesSurviveLargeAndSmallReadBuffers() throws {
        try TestMount.with(options: ["framing=message"]) { mount throws in
            let path = mount.path("LINES")
            let fd = open(path, O_RDWR | O_NONBLOCK)
            #expect(fd >= 0)
            defer { close(fd) }
            let echo = "echo one > '\(path)'; echo two > '\(path)'; exec 3>'\(path)'; echo three >&3; echo four >&3"
            #expect(try ChildProcess.shell(echo, timeout: 5).status == 0)
            // A large buffer gets one message per read ...
            #expect(Sys.read(fd, 4096) == .bytes(Array("one\n".utf8)))
            #expect(Sys.read(fd, 4096) == .bytes(Array("two\n".utf8)))
            // ... a 3-byte buffer the message in parts, continued by the next read.
            let parts = (0..<4).map { _ in Sys.read(fd, 3) }
            #expect(parts == [.bytes(Array("thr".utf8)), .bytes(Array("ee\n".utf8)), .bytes(Array("fou".utf8)), .bytes(Array("r\n".utf8))])
            #expect(Sys.read(fd, 3) == .error(EAGAIN))
            // A message larger than the pipe is refused whole.
            #expect(Sys.write(fd, [UInt8](repeating: 1, count: 65_537)) == .error(EMSGSIZE))
        }
    }

    @Test func messageFramingAlsoWorksInRingMode() throws {
        try TestMount.with(options: ["mode=ring,framing=message,capacity=8K,overflow=overwrite"]) { mount throws in
            let fd = open(mount.path("RING"), O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            for letter in ["a", "b", "c"] { #expect(Sys.write(fd, Array(repeating: Character(letter).asciiValue!, count: 3000)) == .ok(3000)) }
            #expect(try getfattr(mount.path("RING"), "user.npfs.dropped") == "3000")
            #expect(Sys.read(fd, 10_000) == .bytes(Array(repeating: Character("b").asciiValue!, count: 3000)))
        }
    }

    @Test func ignoreCaseSharesOnePipeAndShowsTheCreatorsSpelling() throws {
        try TestMount.with(options: ["ignore_case"]) { mount in
            let cat = try ChildProcess(["cat", mount.path("Hello")])
            #expect(eventually { livePipes(mount) == ["Hello"] })
            #expect(try ChildProcess.shell("echo hi > '\(mount.path("HELLO"))'", timeout: 5).status == 0)
            #expect(cat.wait(timeout: 5) == 0)
            #expect(cat.output == "hi\n")
            #expect(eventually { livePipes(mount).isEmpty })
        }
        // Without the option, names differing in case are different pipes.
        try TestMount.with { mount in
            let fd = open(mount.path("Hello"), O_RDWR | O_NONBLOCK)
            defer { close(fd) }
            #expect(open(mount.path("HELLO"), O_WRONLY | O_NONBLOCK) == -1 && errno == ENXIO)
        }
    }

    @Test func fstabEntryMountsThroughMountFuse() throws {
        try withFstabMount(options: "mode=ring,allow_other,nofail") { (directory: String, mounted: (status: Int32, output: String)) throws in
            #expect(mounted.status == 0, "\(mounted.output)")
            #expect(isMounted(directory))
            let fd = open(directory + "/P", O_WRONLY | O_NONBLOCK)   // ring mode: no ENXIO without a reader
            #expect(fd >= 0)
            #expect(try getfattr(directory + "/P", "user.npfs.mode") == "ring")
            close(fd)
            #expect(try ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15).status == 0)
        }
    }
}

