import Foundation
import Glibc
import Testing

/// Mounts that share pipes through PostgreSQL (`-o cluster=`), as hosts would: several
/// daemons on this machine against a server of the test's own.
@Suite(.serialized) struct ClusterMountTests {
    @Test func mountsOfOneSpaceShareAPipeAndAnotherSpaceIsApart() throws {
        try Self.withHosts(["host=a", "host=b", "cluster_space=other,host=c"]) { server, mounts in
            let (a, b, c) = (mounts[0], mounts[1], mounts[2])
            // A daemon started in the foreground hides the password in its own command line.
            let commandLine = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(a.daemon.pid)/cmdline"))) ?? Data()
            #expect(String(decoding: commandLine, as: UTF8.self).contains("npfs:" + String(repeating: "*", count: server.password.count) + "@"))
            #expect(!String(decoding: commandLine, as: UTF8.self).contains(server.password))

            // A reader on B meets a writer on A, reads its lines and then end of file.
            let reader = try ChildProcess(["cat", b.path("P")])
            let written = try ChildProcess.shell("printf 'one\\ntwo\\n' > \(a.path("P"))", timeout: 20)
            #expect(written.status == 0, "\(written.output)")
            #expect(reader.wait(timeout: 20) == 0)
            #expect(reader.output == "one\ntwo\n")

            // A reader waits on A: a non-blocking writer finds it from B, not from the other space.
            let waiting = try ChildProcess(["cat", a.path("Q")])
            defer { waiting.signal(SIGKILL) }
            #expect(eventually(timeout: 10) {
                (try? server.admin("SELECT count(*) FROM npfs.opens WHERE space = 'default'", database: "npfs")) == "1"
            })
            // ls lists it on every host of the space, and on no other.
            #expect(eventually(timeout: 10) { (try? FileManager.default.contentsOfDirectory(atPath: b.directory)) == ["Q"] })
            #expect((try? FileManager.default.contentsOfDirectory(atPath: c.directory)) == [])
            let otherSpace = try ChildProcess.run(["python3", "-c", Self.nonblockingOpen, c.path("Q")], timeout: 20)
            #expect(otherSpace.output.contains("ENXIO"), "\(otherSpace.output)")
            let sameSpace = try ChildProcess.run(["python3", "-c", Self.nonblockingOpen, b.path("Q")], timeout: 20)
            #expect(sameSpace.output.contains("opened"), "\(sameSpace.output)")
            #expect(waiting.wait(timeout: 20) == 0)
            #expect(waiting.output == "x")
            #expect(eventually(timeout: 10) { (try? FileManager.default.contentsOfDirectory(atPath: b.directory)) == [] })

            // npfs status: the cluster first, as this host sees it.
            let expected = "cluster: 127.0.0.1:\(server.port)/npfs, space default, host a ("
            #expect(eventually(timeout: 10) {
                let status = (try? ChildProcess.run([TestMount.binary, "status", a.directory]))?.output ?? ""
                return status.hasPrefix(expected) && status.split(separator: "\n").first?.hasSuffix(", 2 hosts, connected") == true
            }, "\((try? ChildProcess.run([TestMount.binary, "status", a.directory]))?.output ?? "")")
            let local = try ChildProcess.run([TestMount.binary, "status", "--json", c.directory]).output
            #expect(local.contains("\"space\" : \"other\""), "\(local)")
        }
    }

    @Test func aDaemonKilledLosesItsOpensOnTheOtherHostsAtOnce() throws {
        // A lease that ends within cluster_timeout of the server's start may have ended
        // with a restart, and its host is given that long to come back: keep it short.
        try Self.withHosts(["host=a,cluster_timeout=1", "host=b,cluster_timeout=1"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            // A writer on A holds the pipe open; a reader on B has read its line and waits for more.
            let writer = try ChildProcess(["/bin/sh", "-c", "exec 3>\(a.path("P")); echo line >&3; exec sleep 60"])
            defer { writer.signal(SIGKILL) }
            let reader = try ChildProcess(["cat", b.path("P")])
            defer { reader.signal(SIGKILL) }
            #expect(eventually(timeout: 20) { reader.output == "line\n" })
            usleep(1_200_000)
            #expect(reader.isRunning)
            // A's daemon dies: B's reader sees end of file, its writer being gone.
            let killed = Date()
            a.daemon.signal(SIGKILL)
            #expect(reader.wait(timeout: 10) == 0)
            let seconds = Date().timeIntervalSince(killed)
            print("npfs-measure: reader on another host saw end of file \(Int(seconds * 1000)) ms after its writer's daemon was killed")
            #expect(seconds < 1)
            #expect(eventually(timeout: 5) { (try? server.admin("SELECT count(*) FROM npfs.hosts", database: "npfs")) == "1" })
            #expect(try server.admin("SELECT count(*) FROM npfs.opens", database: "npfs") == "0")
        }
    }

    /// A host the others take for gone while it is still alive (here its daemon is stopped
    /// past the cluster's timeout, as a host cut off from the network would be silent):
    /// its opens close elsewhere; when it comes back, its waiting read fails EIO, its old
    /// handles answer EIO until reopened, and it joins again by itself.
    @Test func aHostTakenForGoneFailsItsOldHandlesEIOAndJoinsAgain() throws {
        try Self.withHosts(["host=a,cluster_timeout=1", "host=b,cluster_timeout=1"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let hosts = { (try? server.admin("SELECT count(*) FROM npfs.hosts", database: "npfs")) ?? "?" }
            let (writer, reader) = try Self.readerOnAOfAWriterOnB(a, b)
            defer { writer.signal(SIGKILL); reader.signal(SIGKILL) }
            usleep(300_000)   // the reader waits in its second read
            a.daemon.signal(SIGSTOP)
            defer { a.daemon.signal(SIGCONT) }
            #expect(eventually(timeout: 20) { hosts() == "1" }, "a is taken for gone")
            #expect(try server.admin("SELECT count(*) FROM npfs.opens", database: "npfs") == "1", "only b's writer is left")
            a.daemon.signal(SIGCONT)
            try Self.expectFencedThenJoinedAgain(reader, hosts: hosts, from: a, to: b)
        }
    }

    /// A writer on `b` that wrote "one" into P and holds it open, and a reader on `a`
    /// (`threeReads`) that has read the line and goes on reading.
    static func readerOnAOfAWriterOnB(_ a: TestMount, _ b: TestMount) throws -> (writer: ChildProcess, reader: ChildProcess) {
        let writer = try ChildProcess(["/bin/sh", "-c", "exec 3>\(b.path("P")); echo one >&3; exec sleep 60"])
        do {
            let reader = try ChildProcess(["python3", "-c", Self.threeReads, a.path("P")])
            #expect(eventually(timeout: 20) { reader.output == "one\n" })
            return (writer, reader)
        } catch {
            writer.signal(SIGKILL)
            throw error
        }
    }

    /// What a host taken for gone shows once it is back: its reader's waiting read and the
    /// next one failed EIO, it joined again, and a fresh pipe from it to `b` works.
    static func expectFencedThenJoinedAgain(_ reader: ChildProcess, hosts: () -> String, from a: TestMount, to b: TestMount) throws {
        #expect(reader.wait(timeout: 30) == 0)
        #expect(reader.output == "one\nEIO\nEIO\n", "the waiting read, then the old handle: \(reader.output)")
        #expect(eventually(timeout: 20) { hosts() == "2" }, "a joined again")
        let fresh = try ChildProcess(["cat", b.path("FRESH")])
        defer { fresh.signal(SIGKILL) }
        #expect(try ChildProcess.shell("echo again > \(a.path("FRESH"))", timeout: 20).status == 0)
        #expect(fresh.wait(timeout: 20) == 0 && fresh.output == "again\n", "\(fresh.output)")
    }

    /// A host cut off from the server by the network: a daemon in a network namespace of
    /// its own, reaching the server over a veth pair whose link is taken down (as a cut
    /// cable: packets dropped, nothing reset). The others take it for gone within the
    /// timeout; on it, a request that needs the server fails EIO within seconds instead of
    /// waiting for TCP to give up; once the link is back, its waiting read and its old
    /// handle fail EIO and it joins again.
    @Test func aHostCutOffByTheNetworkFailsEIOInSecondsAndComesBackFenced() throws {
        try PostgresServer.with { server in
            let network = try NetworkNamespace()
            defer { network.remove() }
            try server.listen(on: network.hostAddress, for: network.address)
            let a = try TestMount(options: ["cluster=\(server.url(at: network.hostAddress)),host=a,cluster_timeout=1"],
                                  launcher: network.launcher)
            defer { a.tearDown() }
            let b = try TestMount(options: ["cluster=\(server.url()),host=b,cluster_timeout=1"])
            defer { b.tearDown() }
            let hosts = { (try? server.admin("SELECT count(*) FROM npfs.hosts", database: "npfs")) ?? "?" }
            let (writer, reader) = try Self.readerOnAOfAWriterOnB(a, b)
            defer { writer.signal(SIGKILL); reader.signal(SIGKILL) }
            // An open of a's whose pipe's worker has its connection when the cut comes.
            let held = Glibc.open(a.path("S"), O_RDWR | O_CLOEXEC)
            #expect(held >= 0)
            defer { Glibc.close(held) }
            usleep(300_000)
            try network.setLink(up: false)   // the cut
            var restored = false
            defer { if !restored { try? network.setLink(up: true) } }
            #expect(eventually(timeout: 20) { hosts() == "1" }, "b takes a for gone")
            let started = Date()
            #expect(Sys.openWithin(15, a.path("Q"), flags: O_RDWR) == .error(EIO))
            let seconds = Date().timeIntervalSince(started)
            print("npfs-measure: an open on a host cut off from the server failed EIO after \(Int(seconds * 1000)) ms")
            #expect(seconds < 6)
            // A write through a connection that went silent mid-use: not the kernel's
            // quarter of an hour, but the cluster's timeout and a new connection's.
            let wrote = Date()
            #expect(BlockingCall.within(15) { Sys.write(held, Array("x".utf8)) } == .error(EIO))
            let writeSeconds = Date().timeIntervalSince(wrote)
            print("npfs-measure: a write on a host cut off mid-connection failed EIO after \(Int(writeSeconds * 1000)) ms")
            #expect(writeSeconds < 6)
            try network.setLink(up: true)   // the network is back
            restored = true
            try Self.expectFencedThenJoinedAgain(reader, hosts: hosts, from: a, to: b)
        }
    }

    /// Reads argv[1] three times, printing each outcome (the text, or the errno's name).
    static let threeReads = """
        import errno, os, sys
        fd = os.open(sys.argv[1], os.O_RDONLY)
        for _ in range(3):
            try:
                print(os.read(fd, 100).decode().strip() or "end of file", flush=True)
            except OSError as e:
                print(errno.errorcode[e.errno], flush=True)
        """

    @Test func bytesCrossHostsIntactAndCompetingReadersShareThemWithoutLossOrDuplicate() throws {
        try Self.withHosts(["host=a", "host=b", "host=c"]) { server, mounts in
            let (a, b, c) = (mounts[0], mounts[1], mounts[2])
            // 2 MB of random bytes in writes of 3000 (across page boundaries), read on another host.
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = directory + "/random", copy = directory + "/copy"
            #expect(try ChildProcess.shell("head -c 2000000 /dev/urandom > \(source)").status == 0)
            let reader = try ChildProcess(["/bin/sh", "-c", "cat \(b.path("R")) > \(copy)"])
            let writer = try ChildProcess.shell("dd if=\(source) of=\(a.path("R")) bs=3000 2>/dev/null", timeout: 120)
            #expect(writer.status == 0, "\(writer.output)")
            #expect(reader.wait(timeout: 60) == 0)
            #expect(try ChildProcess.shell("cmp \(source) \(copy)").status == 0, "the bytes read differ from those written")

            // Pages go as they are read, while the pipe lives on: 40000 bytes are five
            // pages, of which only the one holding the next byte is left.
            let holder = try ChildProcess(["/bin/sh", "-c", "exec 3<>\(a.path("H")); exec sleep 60"])
            defer { holder.signal(SIGKILL) }
            #expect(eventually(timeout: 20) { (try? server.admin("SELECT count(*) FROM npfs.opens", database: "npfs")) == "1" })
            #expect(try ChildProcess.shell("head -c 40000 /dev/zero > \(a.path("H"))", timeout: 30).status == 0)
            #expect(try server.admin("SELECT count(*) FROM npfs.pages", database: "npfs") == "5")
            #expect(try ChildProcess.shell("head -c 40000 \(b.path("H")) | wc -c", timeout: 30).output == "40000\n")
            #expect(try server.admin("SELECT count(*) FROM npfs.pages", database: "npfs") == "1")
            holder.signal(SIGKILL)
            #expect(eventually(timeout: 20) { (try? server.admin("SELECT count(*) FROM npfs.pages", database: "npfs")) == "0" })

            // Numbered lines from A, read by competing readers on B and C: each line once.
            let count = 3000
            let first = try ChildProcess(["/bin/sh", "-c", "cat \(b.path("N")) > \(directory)/b.out"])
            let second = try ChildProcess(["/bin/sh", "-c", "cat \(c.path("N")) > \(directory)/c.out"])
            #expect(eventually(timeout: 20) {
                (try? server.admin("SELECT count(*) FROM npfs.opens", database: "npfs")) == "2"
            })
            let lines = try ChildProcess.run(["python3", "-c", """
                import os, sys
                fd = os.open(sys.argv[1], os.O_WRONLY)
                for i in range(\(count)):
                    os.write(fd, b"record %06d\\n" % i)
                """, a.path("N")], timeout: 300)
            #expect(lines.status == 0, "\(lines.output)")
            #expect(first.wait(timeout: 60) == 0 && second.wait(timeout: 60) == 0)
            let read = try ChildProcess.shell("cat \(directory)/b.out \(directory)/c.out").output.split(separator: "\n")
            #expect(read.count == count, "lost or duplicated: \(read.count) of \(count)")
            #expect(Set(read).count == count)
            #expect(read.allSatisfy { $0.hasPrefix("record ") && $0.count == 13 }, "a record was torn")
        }
    }

    @Test func aServerRestartMidTransferLosesNothingAndKillsNoDaemon() throws {
        try Self.withHosts(["host=a", "host=b"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // The writer writes a line, waits for the restart to be over, writes another.
            let go = directory + "/go"
            let writer = try ChildProcess(["/bin/sh", "-c",
                                           "exec 3>\(a.path("S")); echo before >&3; while [ ! -e \(go) ]; do sleep 0.1; done; echo after >&3"])
            defer { writer.signal(SIGKILL) }
            let reader = try ChildProcess(["cat", b.path("S")])
            defer { reader.signal(SIGKILL) }
            #expect(eventually(timeout: 20) { reader.output == "before\n" })
            server.stopServer(mode: "fast")
            usleep(500_000)
            try server.start()
            #expect(try ChildProcess.shell("touch \(go)").status == 0)
            #expect(writer.wait(timeout: 30) == 0, "the write after the restart failed: \(writer.output)")
            #expect(reader.wait(timeout: 30) == 0)
            #expect(reader.output == "before\nafter\n")
            #expect(a.daemon.isRunning && b.daemon.isRunning)
            #expect(try server.admin("SELECT count(*) FROM npfs.hosts", database: "npfs") == "2")
        }
    }

    /// npfs get, set and peek, and chmod, of a pipe from a host that has no open of it:
    /// the pipe is read from the server for the call.
    @Test func settingsAndPeeksReachAPipeFromAHostWithoutAnOpen() throws {
        try Self.withHosts(["host=a", "host=b"]) { _, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let npfs = TestMount.binary
            let holder = try ChildProcess(["/bin/sh", "-c", "exec 3<>\(a.path("P")); printf hello >&3; exec sleep 60"])
            defer { holder.signal(SIGKILL) }
            // First, through b's root only (npfs set, a root attribute), before anything
            // on b looked the name up: b had no inode for it, and both said ENOENT.
            #expect(eventually(timeout: 20) { (try? ChildProcess.run([npfs, "set", b.path("P"), "capacity=96K"]))?.status == 0 },
                    "set on b before any lookup there")
            #expect(try getfattr(b.directory, "user.npfs.pipe.P.capacity") == "98304")
            #expect(eventually(timeout: 20) {
                (try? ChildProcess.run([npfs, "get", b.path("P"), "buffered"]))?.output == "5\n"
            }, "get on b")
            #expect(try ChildProcess.run([npfs, "get", b.path("P"), "readers", "writers"]).output == "readers=1\nwriters=1\n")
            #expect(try ChildProcess.run([npfs, "peek", b.path("P")]).output == "hello")
            let set = try ChildProcess.run([npfs, "set", b.path("P"), "capacity=128K"])
            #expect(set.status == 0, "\(set.output)")
            #expect(eventually(timeout: 10) { (try? ChildProcess.run([npfs, "get", a.path("P"), "capacity"]))?.output == "131072\n" })
            #expect(try ChildProcess.shell("chmod 600 \(b.path("P"))").status == 0)
            #expect(eventually(timeout: 10) { (try? ChildProcess.run(["stat", "-c", "%a", a.path("P")]))?.output == "600\n" })
            // A name no host has open is no pipe here either.
            let none = try ChildProcess.run([npfs, "get", b.path("NONE"), "readers"])
            #expect(none.status != 0 && none.output.contains("is not a live pipe"), "\(none.output)")
        }
    }

    /// Readiness changes are told only to hosts whose opens were polled: a host whose
    /// reader blocks in read(2) gets its bytes through its mailbox and no notification per
    /// write (each one wakes every listening backend and serializes commits on the server:
    /// 4 KiB blocks went 20% faster without them); a host that polls is told, and its poll wakes.
    @Test func onlyHostsThatPollAreToldOfReadinessChanges() throws {
        try Self.withHosts(["host=a", "host=b"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let channel = "npfs_host_" + (try server.admin("SELECT id FROM npfs.hosts WHERE name = 'b'", database: "npfs"))
            let blocking = try server.notifications(on: channel) {
                let reader = try ChildProcess(["/bin/sh", "-c", "exec wc -c < \(b.path("P"))"])
                defer { reader.signal(SIGKILL) }
                #expect(try ChildProcess.shell("dd if=/dev/zero of=\(a.path("P")) bs=4096 count=100 2>/dev/null", timeout: 60).status == 0)
                #expect(reader.wait(timeout: 30) == 0)
                #expect(reader.output.trimmingCharacters(in: .whitespacesAndNewlines) == "409600")
            }
            let told = blocking.filter { $0.hasPrefix("c") }.count
            #expect(told == 0, "b was told of changes of a pipe it does not poll")
            let polling = try server.notifications(on: channel) {
                let reader = try ChildProcess(["python3", "-c", Self.pollingReader, b.path("Q")])
                defer { reader.signal(SIGKILL) }
                #expect(try ChildProcess.shell("for i in $(seq 20); do echo line$i; sleep 0.02; done > \(a.path("Q"))", timeout: 60).status == 0)
                #expect(reader.wait(timeout: 30) == 0)
                #expect(reader.output == (1...20).map { "line\($0)\n" }.joined(), "\(reader.output)")
            }
            #expect(polling.contains { $0.hasPrefix("c") }, "b polls, and was not told")
        }
    }

    /// Reads argv[1] to its end, non-blocking, waiting in poll(2) whenever it is empty.
    static let pollingReader = """
        import os, select, sys
        fd = os.open(sys.argv[1], os.O_RDONLY)
        os.set_blocking(fd, False)
        poller = select.poll(); poller.register(fd, select.POLLIN)
        data = b""
        while True:
            poller.poll(20000)
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
        sys.stdout.write(data.decode())
        """

    /// The README's fstab line, as mount(8) and mount.fuse3 run it: the password from a
    /// passfile (mode 0600), the mount a host of the cluster like any other.
    @Test func anFstabLineMountsAClusterHost() throws {
        try Self.withHosts(["host=b"]) { server, mounts in
            let b = mounts[0]
            let files = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: files) }
            let passfile = files + "/pgpass"
            try "127.0.0.1:\(server.port):npfs:npfs:\(server.password)\n".write(toFile: passfile, atomically: false, encoding: .utf8)
            chmod(passfile, 0o600)
            let options = "cluster=\(server.url(password: false)),cluster_passfile=\(passfile),host=f,nofail"
            try withFstabMount(options: options) { (directory: String, mounted: (status: Int32, output: String)) throws in
                #expect(mounted.status == 0, "\(mounted.output)")
                #expect(isMounted(directory))
                let status = try ChildProcess.run([TestMount.binary, "status", directory])
                #expect(status.output.hasPrefix("cluster: 127.0.0.1:\(server.port)/npfs, space default, host f"), "\(status.output)")
                #expect(!status.output.contains(server.password))
                let reader = try ChildProcess(["cat", b.path("F")])
                defer { reader.signal(SIGKILL) }
                #expect(try ChildProcess.shell("echo from fstab > \(directory)/F", timeout: 30).status == 0)
                #expect(reader.wait(timeout: 20) == 0 && reader.output == "from fstab\n", "\(reader.output)")
                #expect(try ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 30).status == 0)
            }
        }
    }

    /// A statement that runs holds back what VACUUM may remove in the whole database: the
    /// hosts' watch on each other (a wait for a lease) is cut into beats of a second, so
    /// the rows pipes' steps leave behind never pile up (they did, and every step slowed).
    /// The beats end without an error in the server's log.
    @Test func noMountHoldsASnapshotForMoreThanABeat() throws {
        try Self.withHosts(["host=a", "host=b"]) { server, _ in
            usleep(2_000_000)
            var oldest = 0.0
            for _ in 0..<12 {
                let age = try server.admin("""
                    SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0) FROM pg_stat_activity
                    WHERE application_name = 'npfs' AND backend_xmin IS NOT NULL
                    """)
                oldest = max(oldest, Double(age) ?? 99)
                usleep(250_000)
            }
            print("npfs-measure: the oldest snapshot a mount held was \(Int(oldest * 1000)) ms old")
            #expect(oldest < 1.6, "a mount's statement held a snapshot for \(oldest) s")
            let errors = server.log.split(separator: "\n").filter { $0.contains("ERROR:") }
            #expect(errors.isEmpty, "\(errors.joined(separator: "\n"))")
        }
    }

    /// With the server away, a request waiting for it can be interrupted at once (Ctrl-C
    /// of a cat whose open waits for the server), status says since when the mount is
    /// disconnected, and everything goes on once the server is back, however long it was
    /// away.
    @Test func requestsWaitingForAnAbsentServerAreInterruptible() throws {
        try Self.withHosts(["host=a", "host=b"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            server.stopServer(mode: "fast")
            let stopped = Date()
            var restarted = false
            defer { if !restarted { try? server.start() } }
            #expect(eventually(timeout: 10) {
                ((try? ChildProcess.run([TestMount.binary, "status", a.directory]))?.output ?? "").contains("disconnected since")
            })
            let waiting = try ChildProcess(["cat", a.path("P")])
            usleep(500_000)
            #expect(waiting.isRunning)
            let interrupted = Date()
            waiting.signal(SIGINT)
            #expect(waiting.wait(timeout: 10) != nil)
            let seconds = Date().timeIntervalSince(interrupted)
            print("npfs-measure: a request waiting for an absent server ended \(Int(seconds * 1000)) ms after its Ctrl-C")
            #expect(seconds < 1, "answered only after \(seconds) s (the cluster timeout is 5)")
            // Away longer than the cluster's timeout: every heartbeat is old when it is back,
            // and no live host may be taken for gone for that (one was, and failed EIO).
            usleep(UInt32(max(0, 6 - Date().timeIntervalSince(stopped)) * 1_000_000))
            try server.start()
            restarted = true
            let reader = try ChildProcess(["cat", b.path("P")])
            defer { reader.signal(SIGKILL) }
            #expect(try ChildProcess.shell("echo back > \(a.path("P"))", timeout: 30).status == 0)
            let status = reader.wait(timeout: 30)
            #expect(status == 0 && reader.output == "back\n", "status \(String(describing: status)): \(reader.output)")
        }
    }

    /// npfs status on a cluster mount lists every pipe of the space, with each pipe's
    /// clients on every host and the host each is on.
    @Test func statusListsEveryHostsPipesAndClients() throws {
        try Self.withHosts(["host=a", "host=b"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            let waiting = try ChildProcess(["cat", b.path("W")])
            defer { waiting.signal(SIGKILL) }
            let holder = try ChildProcess(["/bin/sh", "-c", "exec 3<>\(a.path("X")); exec sleep 60"])
            defer { holder.signal(SIGKILL) }
            #expect(eventually(timeout: 20) { (try? server.admin("SELECT count(*) FROM npfs.opens", database: "npfs")) == "2" })
            let table = try ChildProcess.run([TestMount.binary, "status", a.directory, "--clients"], timeout: 30).output
            let lines = table.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("W ") } && lines.contains { $0.hasPrefix("X ") }, "\(table)")
            #expect(lines.contains { $0.contains(" cat (uid 0) on host b reads, waiting for a writer, for ") }, "\(table)")
            #expect(lines.contains { $0.contains(" sh (uid 0) on host a reads and writes, for ") }, "\(table)")
            let json = try ChildProcess.run([TestMount.binary, "status", "--json", b.directory], timeout: 30).output
            #expect(json.contains("\"host\" : \"a\"") && json.contains("\"host\" : \"b\""), "\(json)")
            let clients = try getfattr(a.path("W"), "user.npfs.clients")
            #expect(clients.contains(" host=b ") && clients.contains("command=cat"), "\(clients)")
        }
    }

    /// libpq's failover: two servers in the URL, the standby synchronous; the primary
    /// dies mid-transfer and the standby is promoted. Both hosts go on with it, neither is
    /// taken for gone (the promoted standby started long before it served the cluster),
    /// and a persisted pipe's bytes are all there.
    @Test func aStandbyPromotedMidTransferTakesOverWithNothingLost() throws {
        try PostgresServer.with { server in
            let standbyPort = try server.startStandby(synchronous: true)
            let url = server.url().replacingOccurrences(of: ":\(server.port)/", with: ":\(server.port)\\,127.0.0.1:\(standbyPort)/")
                + "?target_session_attrs=read-write"
            let a = try TestMount(options: ["cluster=\(url),host=a,persist,cluster_timeout=1"])
            defer { a.tearDown() }
            let b = try TestMount(options: ["cluster=\(url),host=b,persist,cluster_timeout=1"])
            defer { b.tearDown() }
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let go = directory + "/go"
            let writer = try ChildProcess(["python3", "-c", """
                import os, sys, time
                fd = os.open(sys.argv[1], os.O_WRONLY)
                for i in range(10):
                    os.write(fd, b"line %d\\n" % i)
                while not os.path.exists(sys.argv[2]):
                    time.sleep(0.05)
                os.write(fd, b"end\\n")
                """, a.path("F"), go])
            defer { writer.signal(SIGKILL) }
            let reader = try ChildProcess(["python3", "-c", """
                import os, sys, time
                fd = os.open(sys.argv[1], os.O_RDONLY)
                got = b""
                while got.count(b"\\n") < 10:
                    got += os.read(fd, 100)
                print("ten", flush=True)
                while not os.path.exists(sys.argv[2]):
                    time.sleep(0.05)
                while (more := os.read(fd, 100)):
                    got += more
                sys.stdout.write(got.decode()); sys.stdout.flush()
                """, b.path("F"), go])
            defer { reader.signal(SIGKILL) }
            #expect(eventually(timeout: 30) { reader.output == "ten\n" }, "\(reader.output)")
            let ids = try server.admin("SELECT string_agg(id::text, ',' ORDER BY id) FROM npfs.hosts", database: "npfs")
            // The standby has been up for longer than the cluster's timeout, as standbys are.
            usleep(2_000_000)
            server.stopServer(mode: "immediate")
            try server.promoteStandby()
            let connected = { (mount: TestMount) in
                ((try? ChildProcess.run([TestMount.binary, "status", mount.directory]))?.output ?? "").split(separator: "\n").first?.hasSuffix("connected") == true
                    && !(((try? ChildProcess.run([TestMount.binary, "status", mount.directory]))?.output ?? "").contains("disconnected"))
            }
            #expect(eventually(timeout: 60) { connected(a) && connected(b) }, "both hosts are connected to the promoted standby")
            #expect(try ChildProcess.shell("touch \(go)").status == 0)
            #expect(writer.wait(timeout: 30) == 0, "\(writer.output)")
            #expect(reader.wait(timeout: 30) == 0)
            let lines = (0..<10).map { "line \($0)\n" }.joined()
            #expect(reader.output == "ten\n" + lines + "end\n", "\(reader.output)")
            #expect(try server.admin("SELECT string_agg(id::text, ',' ORDER BY id) FROM npfs.hosts", database: "npfs", port: standbyPort) == ids,
                    "neither host was taken for gone")
        }
    }

    @Test func anIdleMountWithAThousandPipesHoldsFiveConnectionsAndQueriesOnceASecond() throws {
        try PostgresServer.with { server in
            try TestMount.with(options: ["cluster=\(server.url()),host=a"]) { a in
                // 1,000 live pipes: one process holds each open for reading and writing.
                let holder = try ChildProcess(["python3", "-c", """
                    import os, sys, time
                    fds = [os.open(sys.argv[1] + "/p%d" % i, os.O_RDWR) for i in range(1000)]
                    print("open", flush=True)
                    time.sleep(120)
                    """, a.directory])
                defer { holder.signal(SIGKILL) }
                #expect(eventually(timeout: 120) { holder.output.contains("open") }, "\(holder.output)")
                #expect(try server.admin("SELECT count(*) FROM npfs.pipes", database: "npfs") == "1000")
                let connections = try server.admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'npfs'")
                #expect(Int(connections) ?? 99 <= 5, "\(connections) connections")
                // Every statement the server runs for 5 idle seconds, from its log.
                try server.admin("ALTER SYSTEM SET log_statement = 'all'")
                try server.admin("SELECT pg_reload_conf()")
                usleep(500_000)
                let before = server.log.components(separatedBy: "\n").count
                usleep(5_000_000)
                let logged = server.log.components(separatedBy: "\n").dropFirst(before - 1)
                    .filter { $0.contains("LOG:  statement:") || $0.contains("LOG:  execute") }
                let ours = logged.filter { !$0.contains("pg_reload_conf") && !$0.contains("ALTER SYSTEM") }
                print("npfs-measure: an idle cluster mount with 1000 live pipes ran \(ours.count) statements in 5 s over \(connections) connections")
                #expect(ours.count <= 7, "\(ours.joined(separator: "\n"))")
                try server.admin("ALTER SYSTEM RESET log_statement")
                try server.admin("SELECT pg_reload_conf()")
            }
        }
    }

    @Test func settingsOwnersAndPeeksOfAClusterPipe() throws {
        try Self.withHosts(["host=a", "host=b"]) { server, mounts in
            let (a, b) = (mounts[0], mounts[1])
            // A process on A holds P open and leaves three bytes in it.
            let holder = try ChildProcess(["python3", "-c", """
                import os, sys, time
                fd = os.open(sys.argv[1], os.O_RDWR); os.write(fd, b"abc"); print("held", flush=True); time.sleep(60)
                """, a.path("P")])
            defer { holder.signal(SIGKILL) }
            #expect(eventually(timeout: 20) { holder.output.contains("held") })
            let npfs = TestMount.binary
            #expect(try ChildProcess.run([npfs, "peek", a.path("P")]).output == "abc")
            #expect(try ChildProcess.run([npfs, "set", a.path("P"), "capacity=8K"]).status == 0)
            #expect(try ChildProcess.run([npfs, "get", a.path("P"), "capacity"]).output == "8192\n")
            #expect(try ChildProcess.run(["chmod", "600", a.path("P")]).status == 0)
            #expect(try ChildProcess.run(["stat", "-c", "%a", a.path("P")]).output == "600\n")
            // The other host reads the bytes, and sees the capacity set on A.
            let reader = try ChildProcess.run(["python3", "-c", """
                import os, sys
                fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK); print(os.read(fd, 100).decode()); os.close(fd)
                """, b.path("P")], timeout: 20)
            #expect(reader.output == "abc\n", "\(reader.output)")
        }
    }

    /// The README's two-host example, as written, with two mounts of this machine as the
    /// hosts and the password from PGPASSWORD.
    @Test func theReadmeClusterExampleRunsAsDocumented() throws {
        let readme = try String(contentsOfFile: TestMount.packageRoot + "/README.md", encoding: .utf8)
        let parts = readme.components(separatedBy: "<!-- readme-cluster-example -->")
        try #require(parts.count == 2, "one cluster example in the README")
        let pieces = parts[1].components(separatedBy: "<!-- readme-output -->")
        let (script, output) = (fencedCode(pieces[0]), fencedCode(pieces[1]))
        try PostgresServer.with { server in
            // Mount points that ls sorts as the README's do.
            let parent = try makeTemporaryDirectory()
            let (a, b) = (parent + "/a", parent + "/b")
            mkdir(a, 0o755)
            mkdir(b, 0o755)
            defer {
                for directory in [a, b] {
                    _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 30)
                    if isMounted(directory) { _ = try? ChildProcess.run(["fusermount3", "-u", "-z", directory], timeout: 10) }
                    rmdir(directory)
                }
                rmdir(parent)
            }
            func local(_ text: String) -> String {
                text.replacingOccurrences(of: "/mnt/a", with: a).replacingOccurrences(of: "/mnt/b", with: b)
                    .replacingOccurrences(of: "postgresql://npfs@db.example/npfs", with: server.url(password: false))
            }
            let directory = (TestMount.binary as NSString).deletingLastPathComponent
            let path = directory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            let result = try ChildProcess.shell(local(script), timeout: 60, environment: ["PATH": path, "PGPASSWORD": server.password])
            #expect(result.status == 0)
            #expect(result.output == local(output), "printed:\n\(result.output)")
        }
    }

    /// Runs `body` with a server of its own and one cluster mount of it per entry of `hosts`
    /// (each entry the mount's options besides `cluster=`), always unmounting and stopping.
    static func withHosts(_ hosts: [String], _ body: (PostgresServer, [TestMount]) throws -> Void) throws {
        try PostgresServer.with { server in
            var mounts: [TestMount] = []
            defer { for mount in mounts.reversed() { mount.tearDown() } }
            for options in hosts { mounts.append(try TestMount(options: ["cluster=\(server.url()),\(options)"])) }
            try body(server, mounts)
        }
    }

    /// Opens argv[1] for writing without blocking; prints "opened" (after writing "x") or the errno's name.
    static let nonblockingOpen = """
        import errno, os, sys
        try:
            fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"x"); os.close(fd); print("opened")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """

    /// TLS is libpq's: with `sslmode=verify-full` and the server's authority every
    /// connection of the mount is encrypted; with an authority that did not sign the
    /// server's certificate, the mount is refused in one line.
    @Test func tlsConnectionsAreVerifiedAsLibpqDoes() throws {
        try PostgresServer.with { server in
            let authority = try server.enableTLS()
            let stranger = try server.makeAuthority(named: "stranger")
            try TestMount.with(options: ["cluster=\(server.url(query: "sslmode=verify-full&sslrootcert=\(authority)")),host=a"]) { a in
                let echoed = try ChildProcess.shell("exec 3<>\(a.path("P")); echo sealed >&3; read -r line <&3; echo $line", timeout: 30)
                #expect(echoed.output == "sealed\n", "\(echoed.output)")
                let encrypted = try server.admin("""
                    SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity USING (pid)
                    WHERE application_name = 'npfs'
                    """)
                // (The listener's, the watcher's and those of the workers used so far.)
                let counts = encrypted.split(separator: "|").compactMap { Int($0) }
                #expect(counts.count == 2 && counts[0] == counts[1] && counts[0] >= 3, "encrypted|all connections of the mount: \(encrypted)")
            }
            let directory = try makeTemporaryDirectory()
            defer { rmdir(directory) }
            let refused = try ChildProcess.run([TestMount.binary, "mount", "-o",
                                                "cluster=\(server.url(query: "sslmode=verify-full&sslrootcert=\(stranger)"))", directory],
                                               timeout: 30)
            #expect(refused.status != 0)
            #expect(refused.output.split(separator: "\n").count == 1 && refused.output.contains("certificate verify failed"), "\(refused.output)")
            #expect(!isMounted(directory))
        }
    }

    @Test func aBadClusterIsOneLineAndMountsNothing() throws {
        try PostgresServer.with { server in
            let directory = try makeTemporaryDirectory()
            defer { rmdir(directory) }
            let wrongPassword = server.url(password: false).replacingOccurrences(of: "npfs@", with: "npfs:NotTheSecret42@")
            let cases: [(String, String)] = [
                ("cluster=\(wrongPassword)", "password authentication failed"),
                ("cluster=" + String(server.url().dropLast("npfs".count)) + "nosuchdb", "\"nosuchdb\" does not exist"),
                ("cluster=postgresql://npfs:pw@127.0.0.1:1/npfs,cluster_timeout=2", "Connection refused"),
                ("cluster=db.example", "give a postgres:// or postgresql:// URL"),
                ("cluster_space=x", "needs cluster="),
                ("cluster=\(server.url()),cluster_schema=1bad", "bad cluster_schema"),
            ]
            for (option, expected) in cases {
                let started = Date()
                let result = try ChildProcess.run([TestMount.binary, "mount", "-o", option, directory], timeout: 30)
                #expect(result.status != 0, "\(option)")
                let lines = result.output.split(separator: "\n")
                #expect(lines.count == 1 && result.output.contains(expected), "\(option): \(result.output)")
                #expect(!result.output.contains("NotTheSecret42"))
                #expect(!isMounted(directory))
                #expect(Date().timeIntervalSince(started) < 10)
            }
        }
    }

    @Test func aPasswordInTheURLNeverShowsInTheDaemonsCommandLine() throws {
        try PostgresServer.with { server in
            let directory = try makeTemporaryDirectory()
            defer { rmdir(directory) }
            let mounted = try ChildProcess.run([TestMount.binary, "mount", "-o", "cluster=\(server.url()),host=bg", directory], timeout: 30)
            #expect(mounted.status == 0, "\(mounted.output)")
            defer { _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 30) }
            let pids = try ChildProcess.run(["pgrep", "-f", "npfs mount -f .*\(directory)"], timeout: 10).output
                .split(separator: "\n").compactMap { pid_t($0) }
            #expect(pids.count == 1)
            for pid in pids {
                let commandLine = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                let text = String(decoding: commandLine, as: UTF8.self)
                #expect(text.contains("cluster=postgresql://npfs:***@"), "\(text)")
                #expect(!text.contains(server.password))
            }
            // And it works: the password reached libpq.
            let reader = try ChildProcess(["cat", directory + "/P"])
            #expect(try ChildProcess.shell("echo hi > \(directory)/P", timeout: 20).status == 0)
            #expect(reader.wait(timeout: 20) == 0)
            #expect(reader.output == "hi\n")
        }
    }
}
