import Foundation
import Glibc
import Testing

/// The seed's ring, message framing, broadcast delivery, interrupts and open_timeout with
/// the writer on one host and readers on others (three mounts of one server): decided by
/// the same machine as on one host.
@Suite(.serialized) struct ClusterModesTests {
    @Test func ringFramingBroadcastInterruptsAndOpenTimeoutAcrossHosts() throws {
        try ClusterMountTests.withHosts(["host=a", "host=b,open_timeout=0.5", "host=c"]) { server, mounts in
            let (a, b, c) = (mounts[0], mounts[1], mounts[2])
            let opens = { (try? server.admin("SELECT count(*) FROM npfs.opens", database: "npfs")) ?? "?" }
            func npfs(_ arguments: [String]) throws -> String {
                let result = try ChildProcess.run([TestMount.binary] + arguments, timeout: 30)
                #expect(result.status == 0, "npfs \(arguments): \(result.output)")
                return result.output
            }

            // Ring mode, set on A: a write larger than the ring keeps its first 4096 bytes
            // (overflow=drop), and B reads them without waiting.
            let ring = Glibc.open(a.path("RING"), O_RDWR | O_CLOEXEC)
            #expect(ring >= 0)
            defer { Glibc.close(ring) }
            _ = try npfs(["set", a.path("RING"), "mode=ring", "overflow=drop", "capacity=4K"])
            #expect(Sys.write(ring, [UInt8](repeating: 1, count: 10000)) == .ok(10000), "a ring write reports its whole length")
            let ringReader = Glibc.open(b.path("RING"), O_RDONLY | O_CLOEXEC)
            #expect(ringReader >= 0, "a ring-mode open does not wait")
            #expect(Sys.read(ringReader, 8192) == .bytes([UInt8](repeating: 1, count: 4096)))
            Glibc.close(ringReader)
            #expect(try npfs(["get", a.path("RING"), "dropped"]) == "5904\n")

            // Message framing: two writes on A are two reads on B.
            let framed = Glibc.open(a.path("MSG"), O_RDWR | O_CLOEXEC)
            #expect(framed >= 0)
            defer { Glibc.close(framed) }
            _ = try npfs(["set", a.path("MSG"), "framing=message"])
            let messageReader = Glibc.open(b.path("MSG"), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            #expect(messageReader >= 0)
            #expect(Sys.write(framed, Array("abc".utf8)) == .ok(3) && Sys.write(framed, Array("defgh".utf8)) == .ok(5))
            // (The read-write open on A is a reader too: B's reads come first here.)
            #expect(Sys.read(messageReader, 100) == .bytes(Array("abc".utf8)))
            #expect(Sys.read(messageReader, 100) == .bytes(Array("defgh".utf8)))
            Glibc.close(messageReader)

            // Broadcast: readers on B and C each get every byte written on A.
            let news = Glibc.open(a.path("NEWS"), O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            #expect(news == -1 && errno == ENXIO, "no reader on any host")
            let first = Glibc.open(b.path("NEWS"), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            let second = Glibc.open(c.path("NEWS"), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            #expect(first >= 0 && second >= 0)
            defer { Glibc.close(first); Glibc.close(second) }
            _ = try npfs(["set", b.path("NEWS"), "delivery=broadcast"])
            let writer = Glibc.open(a.path("NEWS"), O_WRONLY | O_CLOEXEC)
            #expect(writer >= 0)
            #expect(Sys.write(writer, Array("extra".utf8)) == .ok(5))
            Glibc.close(writer)
            #expect(Sys.read(first, 100) == .bytes(Array("extra".utf8)))
            #expect(Sys.read(second, 100) == .bytes(Array("extra".utf8)))
            #expect(Sys.read(second, 100) == .bytes([]), "end of file: the writer on A closed")

            // open_timeout (B's mount option): an open on B that no writer meets fails
            // ETIMEDOUT and leaves nothing in the cluster.
            #expect(eventually(timeout: 10) { opens() == "4" }, "RING, MSG and NEWS twice held: \(opens())")
            let started = Date()
            #expect(Sys.openWithin(10, b.path("LATE")) == .error(ETIMEDOUT))
            #expect((0.4...5).contains(Date().timeIntervalSince(started)))
            #expect(eventually(timeout: 10) { opens() == "4" }, "the timed-out open left no trace: \(opens())")

            // open_timeout set on a pipe on A: an open on C, whose mount has none, keeps it.
            let firstReader = try ChildProcess(["cat", a.path("PT")])
            defer { firstReader.signal(SIGKILL) }
            #expect(eventually(timeout: 10) { opens() == "5" })
            _ = try npfs(["set", a.path("PT"), "open_timeout=0.5"])
            let timed = Date()
            #expect(Sys.openWithin(10, c.path("PT")) == .error(ETIMEDOUT))
            #expect((0.4...5).contains(Date().timeIntervalSince(timed)))
            firstReader.signal(SIGKILL)
            #expect(eventually(timeout: 10) { opens() == "4" })

            // A pipe's open_timeout of 0 (none, as A's mount gives it) holds for an open on
            // B, whose mount says 0.5: B had not seen the pipe when the open came, and its
            // own default once timed the open out.
            let readerOnA = try ChildProcess(["cat", a.path("PZ")])
            defer { readerOnA.signal(SIGKILL) }
            #expect(eventually(timeout: 10) { opens() == "5" })
            let readerOnB = BlockingCall { Sys.open(b.path("PZ"), O_RDONLY) }
            #expect(readerOnB.wait(timeout: 2) == nil, "an open on B with no writer still waits after 2 s")
            let writerOnC = Glibc.open(c.path("PZ"), O_WRONLY | O_CLOEXEC)
            #expect(writerOnC >= 0)
            let met = readerOnB.wait(timeout: 10)
            if case .ok(let fd) = met { Glibc.close(Int32(fd)) } else { Issue.record("the open on B: \(String(describing: met))") }
            Glibc.close(writerOnC)
            readerOnA.signal(SIGKILL)
            #expect(eventually(timeout: 10) { opens() == "4" })

            // Interrupts: a reader on C waiting for a writer, then one waiting for data,
            // end with the signal; the data written afterwards is not lost.
            let waitingOpen = try ChildProcess(["cat", c.path("INT")])
            #expect(eventually(timeout: 10) { opens() == "5" })
            waitingOpen.signal(SIGINT)
            #expect(waitingOpen.wait(timeout: 10) != nil)
            #expect(eventually(timeout: 10) { opens() == "4" }, "the interrupted open left no trace: \(opens())")
            let holder = Glibc.open(a.path("INT"), O_RDWR | O_CLOEXEC)
            #expect(holder >= 0)
            defer { Glibc.close(holder) }
            let waitingRead = try ChildProcess(["cat", c.path("INT")])
            #expect(eventually(timeout: 10) { opens() == "6" })
            usleep(300_000)
            waitingRead.signal(SIGINT)
            #expect(waitingRead.wait(timeout: 10) != nil)
            #expect(Sys.write(holder, Array("kept".utf8)) == .ok(4))
            let later = Glibc.open(c.path("INT"), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            #expect(later >= 0)
            defer { Glibc.close(later) }
            #expect(eventually(timeout: 5) { Sys.read(later, 100) == .bytes(Array("kept".utf8)) }, "the interrupted read took nothing")
        }
    }
}
