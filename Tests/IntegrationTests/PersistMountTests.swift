import Foundation
import Glibc
import Testing

/// `persist=on` on a mount: the pipe and its bytes outlive the last close (until `rm`, or
/// unmount; in a cluster, every daemon and the server restarting), a reader of a persisted
/// pipe holding bytes does not wait for a writer, and `rm` removes only persisted pipes.
@Suite(.serialized) struct PersistMountTests {
    @Test func aLocalPersistedPipeOutlivesItsLastCloseUntilRm() throws {
        try TestMount.with { mount in
            let npfs = TestMount.binary
            let stored = try ChildProcess.shell("""
                exec 3<>\(mount.path("KEEP")) && \(npfs) set \(mount.path("KEEP")) persist=on && echo kept >&3
                """, timeout: 20)
            #expect(stored.status == 0, "\(stored.output)")
            #expect((try? FileManager.default.contentsOfDirectory(atPath: mount.directory)) == ["KEEP"])
            #expect(try ChildProcess.run([npfs, "get", mount.path("KEEP"), "persist", "buffered"]).output.contains("persist=on"))
            // No writer, yet the reader does not wait: the bytes, then end of file.
            let read = try ChildProcess.run(["cat", mount.path("KEEP")], timeout: 20)
            #expect(read.status == 0 && read.output == "kept\n", "\(read.output)")
            // rm of any other name still fails EPERM; of the persisted pipe, it goes.
            let other = try ChildProcess.shell("rm -f \(mount.path("OTHER")) 2>&1", timeout: 20)
            #expect(other.status != 0 && other.output.contains("Operation not permitted"), "\(other.output)")
            #expect(try ChildProcess.shell("rm \(mount.path("KEEP"))", timeout: 20).status == 0)
            #expect((try? FileManager.default.contentsOfDirectory(atPath: mount.directory)) == [])
        }
    }

    @Test func theMountsPersistOptionKeepsEveryNewPipe() throws {
        try TestMount.with(options: ["persist"]) { (mount: TestMount) throws in
            #expect(try ChildProcess.shell("exec 3<>\(mount.path("A")); printf abc >&3", timeout: 20).status == 0)
            #expect(try ChildProcess.run(["cat", mount.path("A")], timeout: 20).output == "abc")
            #expect((try? FileManager.default.contentsOfDirectory(atPath: mount.directory)) == ["A"], "empty, and still there")
            #expect(try ChildProcess.shell("rm \(mount.path("A"))", timeout: 20).status == 0)
            #expect((try? FileManager.default.contentsOfDirectory(atPath: mount.directory)) == [])
        }
    }

    @Test func aClusterPersistedPipeOutlivesEveryDaemonAndAServerRestart() throws {
        try PostgresServer.with { server in
            let npfs = TestMount.binary
            // Every statement in the server's log: a persisted pipe's steps ask for a durable commit.
            try server.admin("ALTER SYSTEM SET log_statement = 'all'")
            try server.admin("SELECT pg_reload_conf()")
            try TestMount.with(options: ["cluster=\(server.url()),host=a"]) { a in
                let stored = try ChildProcess.shell("""
                    exec 3<>\(a.path("JOBS")) && \(npfs) set \(a.path("JOBS")) persist=on && echo job1 >&3 && echo job2 >&3
                    """, timeout: 30)
                #expect(stored.status == 0, "\(stored.output)")
            }
            // Every daemon gone: the pipe is in the database, and its commits waited for the disk.
            #expect(try server.admin("SELECT persist FROM npfs.pipes", database: "npfs") == "t")
            let durable = server.log.components(separatedBy: "\n").filter { $0.contains("SET LOCAL synchronous_commit TO DEFAULT") }
            #expect(durable.count >= 2, "each write's commit waits for the disk (\(durable.count) asked to)")
            server.stopServer(mode: "immediate")   // a crash: only what reached the disk survives
            try server.start()
            try TestMount.with(options: ["cluster=\(server.url()),host=b"]) { b in
                #expect(eventually(timeout: 10) { (try? FileManager.default.contentsOfDirectory(atPath: b.directory)) == ["JOBS"] })
                let read = try ChildProcess.run(["cat", b.path("JOBS")], timeout: 30)
                #expect(read.status == 0 && read.output == "job1\njob2\n", "\(read.output)")
                let other = try ChildProcess.shell("rm -f \(b.path("OTHER")) 2>&1", timeout: 30)
                #expect(other.status != 0 && other.output.contains("Operation not permitted"), "\(other.output)")
                // rm on a host that has no open of it.
                let removed = try ChildProcess.shell("rm \(b.path("JOBS")) 2>&1", timeout: 30)
                #expect(removed.status == 0, "\(removed.output)")
                #expect(try server.admin("SELECT count(*) FROM npfs.pipes", database: "npfs") == "0")
                #expect(eventually(timeout: 10) { (try? FileManager.default.contentsOfDirectory(atPath: b.directory)) == [] })
            }
        }
    }
}
