import CLinux
import Foundation
import Glibc
import Testing

/// FUSE over io_uring (issue 15): a mount serves over io_uring when the kernel offers it
/// (`enable_uring`, which `./mount.sh --io-uring` sets) unless `-o io_uring=off`, says so
/// in `npfs status`, and behaves on rings as on /dev/fuse (the whole integration suite
/// runs a second time on rings in ./test.sh). Each test that changes the kernel's
/// `enable_uring` puts the old value back, also on failure.
@Suite(.serialized) struct IoUringTests {
    static let parameter = "/sys/module/fuse/parameters/enable_uring"

    /// `body` with the fuse module's `enable_uring` set to `on`, the old value restored after.
    static func withEnableUring<T>(_ on: Bool, _ body: () throws -> T) throws -> T {
        let old = try String(contentsOfFile: parameter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        defer { try? (old + "\n").write(toFile: parameter, atomically: false, encoding: .utf8) }
        try (on ? "Y\n" : "N\n").write(toFile: parameter, atomically: false, encoding: .utf8)
        return try body()
    }

    static var kernelHasIt: Bool { FileManager.default.fileExists(atPath: parameter) }

    /// `body` with a mount served over io_uring (`io_uring=on`, so that it cannot quietly
    /// fall back), on a kernel that has it.
    static func withRingMount<T>(options: [String] = [], _ body: (TestMount) throws -> T) throws -> T? {
        guard kernelHasIt else { return nil }
        return try withEnableUring(true) {
            try TestMount.with(options: ["io_uring=on"] + options) { mount in
                #expect(try getfattr(mount.directory, "user.npfs.transport").hasPrefix("transport=io_uring\n"))
                return try body(mount)
            }
        }
    }

    /// A pipe carries a line.
    static func carriesALine(_ mount: TestMount) throws {
        let reader = try ChildProcess(["cat", mount.path("P")])
        defer { reader.signal(SIGKILL) }
        #expect(try ChildProcess.shell("echo hi > \(mount.path("P"))", timeout: 10).status == 0)
        #expect(reader.wait(timeout: 10) == 0 && reader.output == "hi\n")
    }

    @Test func statusSaysWhichTransportServes() throws {
        guard Self.kernelHasIt else {
            // A kernel without it never offers it.
            try TestMount.with { mount in
                let status = try ChildProcess.run([TestMount.binary, "status", mount.directory]).output
                #expect(status.contains("; requests over /dev/fuse (the kernel does not offer io_uring)"), "\(status)")
            }
            return
        }
        // (enable_uring, options): the attribute, and how the status line ends.
        let cases: [(Bool, [String], String, String)] = [
            (false, [], "transport=dev_fuse\nio_uring=not_offered\n", "; requests over /dev/fuse (the kernel does not offer io_uring)"),
            (true, ["io_uring=off"], "transport=dev_fuse\nio_uring=off\n", "; requests over /dev/fuse (io_uring=off)"),
            (true, ["io_uring_depth=4"], "transport=io_uring\nio_uring=offered\n", "; requests over io_uring ("),
            (true, ["io_uring_depth=4", "io_uring_spin=0"], "transport=io_uring\nio_uring=offered\n", "; requests over io_uring ("),
        ]
        let queues = try String(contentsOfFile: "/sys/devices/system/cpu/possible", encoding: .utf8)
            .split(separator: ",").compactMap { $0.split(separator: "-").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }.max().map { $0 + 1 } ?? 1
        for (on, options, attribute, said) in cases {
            try Self.withEnableUring(on) { () throws in
                try TestMount.with(options: options) { mount in
                    let status = try ChildProcess.run([TestMount.binary, "status", mount.directory]).output
                    let first = String(status.split(separator: "\n").first ?? "")
                    let text = try getfattr(mount.directory, "user.npfs.transport")
                    #expect(text.hasPrefix(attribute), "\(text)")
                    if attribute.contains("io_uring\n") {
                        // A queue per possible CPU, four entries each, a page and 1 MiB (max_write) each.
                        let spin = options.contains("io_uring_spin=0") ? 0 : 20
                        #expect(text.contains("queues=\(queues)\ndepth=4\nentries=\(queues * 4)\nbuffer_bytes=\(queues * 4 * (4096 + 1 << 20))\nspin_us=\(spin)\n"), "\(text)")
                        #expect(first.contains(said + "\(queues) queues, \(queues * 4) entries, "), "\(first)")
                        #expect(first.hasSuffix(spin == 0 ? " of buffers mapped, no polling)" : " of buffers mapped, polling 20 µs)"), "\(first)")
                    } else {
                        #expect(first.hasSuffix(said), "\(first)")
                    }
                    let json = try ChildProcess.run([TestMount.binary, "status", "--json", mount.directory]).output
                    #expect(json.contains(on && options.isEmpty || options.contains("io_uring_depth=4") ? "\"transport\" : \"io_uring\"" : "\"transport\" : \"dev_fuse\""), "\(json)")
                    try Self.carriesALine(mount)
                }
            }
        }
    }

    /// `io_uring=on` on a kernel that does not offer it: one line, a non-zero exit, no mount.
    @Test func ioUringOnRefusesWithOneLineWhereTheKernelDoesNotOfferIt() throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        let refuse = { () throws in
            let result = try ChildProcess.run([TestMount.binary, "mount", "-o", "io_uring=on", directory], timeout: 15)
            #expect(result.status != 0)
            #expect(result.output.split(separator: "\n").count == 1, "\(result.output)")
            #expect(result.output.hasPrefix("npfs: io_uring=on, but "), "\(result.output)")
            #expect(!isMounted(directory))
            if isMounted(directory) { _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15) }
        }
        if Self.kernelHasIt { try Self.withEnableUring(false, refuse) } else { try refuse() }
        let bad = try ChildProcess.run([TestMount.binary, "mount", "-o", "io_uring_depth=0", directory], timeout: 15)
        #expect(bad.status != 0 && bad.output.contains("bad io_uring_depth '0'"), "\(bad.output)")
        for spin in ["1001", "-1", "x"] {
            let badSpin = try ChildProcess.run([TestMount.binary, "mount", "-o", "io_uring_spin=\(spin)", directory], timeout: 15)
            #expect(badSpin.status != 0 && badSpin.output == "npfs: bad io_uring_spin '\(spin)': give microseconds from 0 to 1000\n", "\(badSpin.output)")
        }
        let wrong = try ChildProcess.run([TestMount.binary, "mount", "-o", "io_uring=yes", directory], timeout: 15)
        #expect(wrong.status != 0 && wrong.output.contains("give io_uring=auto or on or off"), "\(wrong.output)")
    }

    /// With -d, the daemon says once which transport serves.
    @Test func debugSaysOnceWhichTransportServes() throws {
        for on in Self.kernelHasIt ? [true, false] : [false] {
            let run = { () throws in
                let directory = try makeTemporaryDirectory()
                defer { rmdir(directory) }
                let daemon = try ChildProcess([TestMount.binary, "mount", "-d", directory])
                defer {
                    if isMounted(directory) { _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15) }
                    if daemon.wait(timeout: 10) == nil { daemon.signal(SIGKILL) }
                }
                #expect(eventually(timeout: 10) { daemon.output.contains("npfs: requests over") })
                let said = daemon.output.split(separator: "\n").filter { $0.hasPrefix("npfs: requests over") }
                #expect(said.count == 1 && said.first?.hasPrefix(on ? "npfs: requests over io_uring: " : "npfs: requests over /dev/fuse: ") == true,
                        "\(said)")
            }
            if Self.kernelHasIt { try Self.withEnableUring(on, run) } else { try run() }
        }
    }

    /// A reader on one CPU waits; writers on the other CPU answer its reads from their own
    /// queue's thread (a deferred reply crossing queues), 40 MB of them, every byte arriving:
    /// with the reader's queue polling (the default), asleep and woken by a message from the
    /// writer's queue (`io_uring_spin=0`), and polling for long.
    @Test(arguments: [[], ["io_uring_spin=0"], ["io_uring_spin=1000"]])
    func repliesMadeOnAnotherQueuesThreadReachTheirRequests(options: [String]) throws {
        guard npfs_cpu_allowed(0) != 0 && npfs_cpu_allowed(1) != 0 else { return }
        try Self.withRingMount(options: options) { mount in
            let path = mount.path("P")
            let reader = try ChildProcess(["/bin/sh", "-c", "taskset -c 0 dd if='\(path)' bs=4096 2>/dev/null | wc -c"])
            #expect(eventually { livePipes(mount) == ["P"] })
            let writer = try ChildProcess.run(["taskset", "-c", "1", "dd", "if=/dev/zero", "of=\(path)", "bs=4096", "count=10000"], timeout: 60)
            #expect(writer.status == 0, "\(writer.output)")
            #expect(reader.wait(timeout: 30) == 0)
            #expect(reader.output.trimmingCharacters(in: .whitespacesAndNewlines) == "40960000")
        }
    }

    /// Two processes on two CPUs answer each other's messages over two pipes, 2,000 round
    /// trips, each message checked: every answer crosses queues, with the queues polling
    /// and without.
    @Test(arguments: [[], ["io_uring_spin=0"]])
    func pingPongAcrossCPUs(options: [String]) throws {
        guard npfs_cpu_allowed(0) != 0 && npfs_cpu_allowed(1) != 0 else { return }
        try Self.withRingMount(options: options) { mount in
            let script = """
            import os, sys
            ping, pong = sys.argv[1], sys.argv[2]
            if os.fork() == 0:
                os.sched_setaffinity(0, {1})
                r = os.open(ping, os.O_RDONLY); w = os.open(pong, os.O_WRONLY)
                while True:
                    m = os.read(r, 64)
                    if not m: os._exit(0)
                    os.write(w, m[::-1])
            os.sched_setaffinity(0, {0})
            w = os.open(ping, os.O_WRONLY); r = os.open(pong, os.O_RDONLY)
            bad = 0
            for i in range(2000):
                m = b"message %d" % i
                os.write(w, m)
                bad += os.read(r, 64) != m[::-1]
            os.close(w)
            os.wait()
            print("bad", bad)
            """
            let run = try ChildProcess.run(["python3", "-c", script, mount.path("ping"), mount.path("pong")], timeout: 60)
            #expect(run.status == 0 && run.output == "bad 0\n", "\(run.output)")
        }
    }

    /// Each queue's thread runs on its own CPU, and is put back there after `taskset -a -p`
    /// moved every thread of the daemon to one CPU and then let them go (before, the
    /// queues' threads stayed free to run anywhere, and requests took twice as long).
    @Test func queueThreadsStayOnTheirCPUs() throws {
        guard npfs_cpu_allowed(0) != 0 && npfs_cpu_allowed(1) != 0 else { return }
        try Self.withRingMount { mount in
            let pid = try getfattr(mount.directory, "user.npfs.pid").trimmingCharacters(in: .whitespacesAndNewlines)
            let cpus = { () -> [String] in
                let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
                return tasks.compactMap { task in
                    (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8))?
                        .split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
                        .map { $0.split(separator: "\t").last.map(String.init) ?? "" }
                }
            }
            #expect(eventually { cpus().contains("0") && cpus().contains("1") }, "\(cpus())")
            #expect(try ChildProcess.run(["taskset", "-a", "-p", "-c", "0", pid], timeout: 10).status == 0)
            #expect(eventually { !cpus().contains("1") }, "\(cpus())")
            #expect(try ChildProcess.run(["taskset", "-a", "-p", "-c", "0,1", pid], timeout: 10).status == 0)
            #expect(eventually { cpus().contains("0") && cpus().contains("1") }, "each queue's thread back on its CPU: \(cpus())")
            try Self.carriesALine(mount)
        }
    }

    /// Requests that wait hold their ring entries: 24 readers waiting on one CPU's queue of
    /// two entries, and that queue still takes the writes that end their waits.
    @Test func waitingRequestsDoNotStarveTheirQueue() throws {
        guard npfs_cpu_allowed(0) != 0 else { return }
        try Self.withRingMount(options: ["io_uring_depth=2"]) { mount in
            let names = (0..<24).map { "R\($0)" }
            let readers = try names.map { name in
                try ChildProcess(["taskset", "-c", "0", "/bin/sh", "-c", "exec 3<>'\(mount.path(name))'; exec head -c 3 '\(mount.path(name))'"])
            }
            #expect(eventually(timeout: 10) { livePipes(mount).count == 24 && readers.allSatisfy { $0.state == "S" } })
            for name in names {
                #expect(try ChildProcess.run(["taskset", "-c", "0", "/bin/sh", "-c", "printf abc > '\(mount.path(name))'"], timeout: 10).status == 0)
            }
            for reader in readers { #expect(reader.wait(timeout: 10) == 0 && reader.output == "abc") }
            let text = try getfattr(mount.directory, "user.npfs.transport")
            let entries = text.split(separator: "\n").first { $0.hasPrefix("entries=") }.flatMap { Int($0.dropFirst(8)) } ?? 0
            #expect(entries > 24, "the queue grew by an entry per waiting request: \(text)")
        }
    }

    /// Ctrl-C of a `cat` waiting in open, then of one waiting in read: each ends at once
    /// (the INTERRUPT comes over /dev/fuse, its reply goes to the ring).
    @Test func ctrlCEndsAWaitingCat() throws {
        try Self.withRingMount { mount in
            let opening = try ChildProcess(["cat", mount.path("NOBODY")])
            #expect(eventually { livePipes(mount) == ["NOBODY"] && opening.state == "S" })
            opening.signal(SIGINT)
            #expect(opening.wait(timeout: 5) == 128 + SIGINT)
            #expect(eventually { livePipes(mount).isEmpty })
            let reading = try ChildProcess(["/bin/sh", "-c", "exec 3<>'\(mount.path("W"))'; exec cat <'\(mount.path("W"))'"])
            #expect(eventually { livePipes(mount) == ["W"] && reading.state == "S" })
            usleep(100_000)
            #expect(reading.isRunning)
            reading.signal(SIGINT)
            #expect(reading.wait(timeout: 5) == 128 + SIGINT)
            try Self.carriesALine(mount)
        }
    }

    /// SIGKILL of the daemon while requests wait on its rings: every waiting client gets an
    /// error (ENOTCONN, ECONNABORTED, or ECANCELED while the kernel tears the rings down)
    /// and ends; nothing hangs; the mount is left stale and is cleaned up.
    @Test func sigkillOfTheDaemonEndsEveryWaitingClient() throws {
        guard Self.kernelHasIt else { return }
        try Self.withEnableUring(true) { () throws in
            let directory = try makeTemporaryDirectory()
            defer { rmdir(directory) }
            let daemon = try ChildProcess([TestMount.binary, "mount", "-f", "-o", "io_uring=on", directory])
            defer {
                daemon.signal(SIGKILL)
                daemon.wait(timeout: 5)
                if isMounted(directory) { _ = try? ChildProcess.run(["umount", "-l", directory], timeout: 15) }
            }
            #expect(eventually(timeout: 10) { (try? getfattr(directory, "user.npfs.transport"))?.hasPrefix("transport=io_uring") == true })
            let opening = try ChildProcess(["cat", directory + "/NOBODY"])
            let reading = try ChildProcess(["/bin/sh", "-c", "exec 3<>'\(directory)/W'; exec cat '\(directory)/W'"])
            #expect(eventually { opening.state == "S" && reading.state == "S" && livePipes(directory).count == 2 })
            usleep(100_000)
            daemon.signal(SIGKILL)
            #expect(daemon.wait(timeout: 5) == 128 + SIGKILL)
            for client in [opening, reading] {
                let status = client.wait(timeout: 10)
                #expect(status != nil && status != 0, "\(client.output)")
                #expect(["not connected", "connection abort", "canceled"].contains { client.output.contains($0) }, "\(client.output)")
            }
        }
    }

    @Test func mountShTurnsIoUringOnAndOffAndAtBoot() throws {
        let etc = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: etc) }
        let script = TestMount.packageRoot + "/mount.sh"
        guard Self.kernelHasIt else {
            let refused = try ChildProcess.run([script, "--io-uring"], timeout: 30)
            #expect(refused.status != 0 && refused.output.contains("has no FUSE over io_uring"), "\(refused.output)")
            return
        }
        try Self.withEnableUring(false) { () throws in
            let value = { (try? String(contentsOfFile: Self.parameter, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) }
            let on = try ChildProcess.run([script, "--io-uring", "--persistent"], timeout: 30, environment: ["NPFS_ETC": etc])
            #expect(on.status == 0, "\(on.output)")
            #expect(value() == "Y")
            #expect((try? String(contentsOfFile: etc + "/modprobe.d/npfs-io-uring.conf", encoding: .utf8)) == "options fuse enable_uring=1\n")
            #expect((try? String(contentsOfFile: etc + "/tmpfiles.d/npfs-io-uring.conf", encoding: .utf8)) == "w \(Self.parameter) - - - - Y\n")
            let off = try ChildProcess.run([script, "--no-io-uring"], timeout: 30, environment: ["NPFS_ETC": etc])
            #expect(off.status == 0, "\(off.output)")
            #expect(value() == "N")
            #expect(!FileManager.default.fileExists(atPath: etc + "/modprobe.d/npfs-io-uring.conf"))
            #expect(!FileManager.default.fileExists(atPath: etc + "/tmpfiles.d/npfs-io-uring.conf"))
            let wrong = try ChildProcess.run([script, "--io-uring", "/mnt/elsewhere"], timeout: 30)
            #expect(wrong.status != 0 && wrong.output.contains("take no other argument"), "\(wrong.output)")
        }
    }
}
