import Foundation
import Glibc
import Testing

/// The differential suite across hosts: every scenario's writer ("w") opens on one mount of
/// a cluster, its reader ("r") and read-write ("b") descriptors on another, and what they
/// see must be what they see on one kernel FIFO.
///
/// One difference is by design: close(2) returns before FUSE sends the RELEASE (the kernel
/// sends it in the background), so a close reaches the other hosts a moment later. Each
/// close here waits until PostgreSQL has it (and the time it took is printed); a blocked
/// call it releases needs no such wait: it is answered then.
@Suite(.serialized) struct ClusterDifferentialTests {
    @Test func kernelFifoAndAClusterOfTwoMountsAgree() throws {
        try ClusterMountTests.withHosts(["host=a", "host=b"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let opens = { (try? server.admin("SELECT count(*) FROM npfs.opens", database: "npfs")).flatMap { Int($0) } ?? -1 }
            var slowest = 0.0
            for (number, scenario) in Scenario.all.enumerated() {
                let expected = try DifferentialTests.kernelFifoLog(scenario)
                let name = "D\(number)"
                let observed = ScenarioRun(scenario).observe(paths: { slot in slot == "w" ? b.path(name) : a.path(name) },
                                                             closing: { close in
                    let before = opens()
                    close()
                    let started = Date()
                    #expect(eventually(timeout: 5) { opens() < before }, "\(scenario.name): a close never reached PostgreSQL")
                    slowest = max(slowest, Date().timeIntervalSince(started))
                })
                DifferentialTests.compare(scenario, observed: observed, expected: expected)
            }
            print("npfs-measure: a close was seen in PostgreSQL at most \(Int(slowest * 1000)) ms after close(2) returned (psql polling included)")
        }
    }

    /// A poll on one host after a write on another returned sees the bytes, every time (a
    /// poll answered from the last change notification raced it).
    @Test func aPollAfterAWriteElsewhereReturnedSeesTheBytes() throws {
        try ClusterMountTests.withHosts(["host=a", "host=b"]) { _, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let reader = Glibc.open(a.path("P"), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            #expect(reader >= 0)
            defer { Glibc.close(reader) }
            let writer = Glibc.open(b.path("P"), O_WRONLY | O_CLOEXEC)
            #expect(writer >= 0)
            defer { Glibc.close(writer) }
            var missed = 0, byte: UInt8 = 0x78
            for _ in 0..<300 {
                #expect(Glibc.write(writer, &byte, 1) == 1)
                var entry = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
                if Glibc.poll(&entry, 1, 0) != 1 || entry.revents & Int16(POLLIN) == 0 { missed += 1 }
                #expect(eventually(timeout: 5) { Glibc.read(reader, &byte, 1) == 1 })
            }
            #expect(missed == 0, "\(missed) of 300 polls did not see a byte written before they began")
        }
    }
}
