import Foundation
import Glibc
import Testing

/// Issue 8, item 1: broadcast delivery on a mount.
@Suite(.serialized) struct BroadcastMountTests {
    /// Three readers and two writers: every reader gets the same 64 MiB, byte for byte.
    @Test func threeReadersGetIdenticalBytesFromTwoWriters() throws {
        try TestMount.with(options: ["delivery=broadcast"]) { mount in
            let path = mount.path("FANOUT")
            let scratch = try makeTemporaryDirectory()
            defer { _ = try? ChildProcess.run(["rm", "-rf", scratch], timeout: 10) }
            let readers = try (0..<3).map { try ChildProcess(["sh", "-c", "cat '\(path)' > '\(scratch)/r\($0)'"]) }
            #expect(eventually { (try? getfattr(path, "user.npfs.readers")) == "3" })
            let writers = try ChildProcess.shell(
                "head -c 33554432 /dev/urandom > '\(path)' & head -c 33554432 /dev/urandom > '\(path)' & wait", timeout: 120)
            #expect(writers.status == 0, "\(writers.output)")
            for reader in readers { #expect(reader.wait(timeout: 60) == 0, "each reader sees end of file") }
            let sums = try ChildProcess.shell("cd '\(scratch)' && sha256sum r0 r1 r2 | cut -d' ' -f1 | sort -u | wc -l; stat -c %s r0 r1 r2", timeout: 60)
            #expect(sums.output == "1\n67108864\n67108864\n67108864\n", "\(sums.output)")
        }
    }

    /// A reader that closes stops holding bytes back; one that is slow paces the writer.
    @Test func aSlowReaderPacesTheWriterUntilItGoes() throws {
        try TestMount.with(options: ["delivery=broadcast", "capacity=64K"]) { mount in
            let path = mount.path("PACE")
            let fast = try ChildProcess(["sh", "-c", "cat '\(path)' > /dev/null"])
            let slow = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)   // not inherited by the writer
            #expect(slow >= 0)
            #expect(eventually { (try? getfattr(path, "user.npfs.readers")) == "2" })
            let writer = try ChildProcess(["sh", "-c", "head -c 1048576 /dev/zero > '\(path)'"])
            #expect(eventually { (try? getfattr(path, "user.npfs.buffered")) == "65536" }, "the slow reader holds a capacity back")
            usleep(200_000)
            #expect(writer.isRunning, "the writer waits for the slow reader")
            close(slow)
            #expect(writer.wait(timeout: 10) == 0, "with the slow reader gone, the writer finishes")
            #expect(fast.wait(timeout: 10) == 0)
        }
    }

    /// Ring mode with overwrite: a reader left a capacity behind loses the oldest bytes,
    /// counted for it.
    @Test func ringModeCountsEachReadersLoss() throws {
        try TestMount.with(options: ["delivery=broadcast,mode=ring,overflow=overwrite,capacity=4K"]) { mount in
            let path = mount.path("LOSSY")
            let fast = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), slow = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            let writer = open(path, O_WRONLY | O_CLOEXEC)
            defer { [fast, slow, writer].forEach { close($0) } }
            #expect(fast >= 0 && slow >= 0 && writer >= 0)
            for _ in 0..<3 {
                #expect(Sys.write(writer, [UInt8](repeating: 7, count: 3000)) == .ok(3000))
                #expect(Sys.read(fast, 8192) == .bytes([UInt8](repeating: 7, count: 3000)))
            }
            let clients = try getfattr(path, "user.npfs.clients").split(separator: "\n")
            #expect(clients.count == 3 && clients[0].contains(" lost=0 ") && clients[1].contains(" lost=4904 "), "\(clients)")
            #expect(try getfattr(path, "user.npfs.dropped") == "4904")
            let table = try ChildProcess.run([TestMount.binary, "status", mount.directory, "--clients"], timeout: 10).output
            #expect(table.contains("reads, lost 4904 bytes, for"), "\(table)")
            #expect(Sys.read(slow, 8192) == .bytes([UInt8](repeating: 7, count: 4096)), "the newest capacity's worth is left")
        }
    }

    /// Message framing: every reader gets the same whole messages, in order.
    @Test func everyReaderGetsTheSameWholeMessages() throws {
        try TestMount.with(options: ["delivery=broadcast,framing=message"]) { mount in
            let path = mount.path("NEWS")
            let a = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), b = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            let writer = open(path, O_WRONLY | O_CLOEXEC)
            defer { [a, b, writer].forEach { close($0) } }
            for text in ["one", "two", "three"] { #expect(Sys.write(writer, Array(text.utf8)) == .ok(text.utf8.count)) }
            for reader in [a, b] {
                for text in ["one", "two", "three"] { #expect(Sys.read(reader, 100) == .bytes(Array(text.utf8))) }
            }
        }
    }
}
