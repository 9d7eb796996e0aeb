import Foundation
import Glibc
import Testing

/// Mounting, unmounting and shutting down while pipes are open and requests wait.
@Suite(.serialized) struct LifecycleTests {
    /// A `cat` blocked in read: it holds the write end itself (fd 3), so its read waits.
    private func blockedReader(_ mount: TestMount) throws -> ChildProcess {
        let path = mount.path("WAIT")
        let cat = try ChildProcess(["/bin/sh", "-c", "exec 3<>'\(path)'; exec cat '\(path)'"])
        #expect(eventually { livePipes(mount) == ["WAIT"] && cat.state == "S" })
        usleep(100_000)
        #expect(cat.isRunning)
        return cat
    }

    @Test(arguments: [SIGTERM, SIGINT, SIGHUP])
    func signalAnswersWaitingRequestsUnmountsAndExitsZero(_ signal: Int32) throws {
        try TestMount.with { mount in
            let cat = try blockedReader(mount)
            mount.daemon.signal(signal)
            #expect(mount.daemon.wait(timeout: 5) == 0)
            #expect(cat.wait(timeout: 5) == 0, "the waiting read was answered (end of file)")
            #expect(!isMounted(mount.directory))
        }
    }

    @Test func npfsUnmountWorksWhileAReaderWaits() throws {
        try TestMount.with { mount in
            let cat = try blockedReader(mount)
            let unmount = try ChildProcess.run([TestMount.binary, "unmount", mount.directory], timeout: 15)
            #expect(unmount.status == 0, "\(unmount.output)")
            #expect(mount.daemon.wait(timeout: 5) == 0)
            #expect(cat.wait(timeout: 5) == 0)
            #expect(!isMounted(mount.directory))
        }
    }

    @Test func sigtermAnswersAnOpenWaitingForAWriter() throws {
        try TestMount.with { mount in
            let cat = try ChildProcess(["cat", mount.path("NOBODY")])
            #expect(eventually { livePipes(mount) == ["NOBODY"] && cat.state == "S" })
            mount.daemon.signal(SIGTERM)
            #expect(mount.daemon.wait(timeout: 5) == 0)
            #expect(cat.wait(timeout: 5) == 1, "cat's open fails (ENXIO): \(cat.output)")
        }
    }

    @Test func daemonUnmountsWhenTheTestRunnerGoesAway() throws {
        try TestMount.with { mount in
            mount.dropWatchdog()   // as if the test runner had died
            #expect(mount.daemon.wait(timeout: 5) == 0)
            #expect(!isMounted(mount.directory))
        }
    }

    @Test func lazyUnmountLetsTheDaemonExitAfterTheLastClose() throws {
        try TestMount.with { mount in
            let fd = open(mount.path("HELD"), O_RDWR)
            #expect(fd >= 0)
            let plain = try ChildProcess.run(["fusermount3", "-u", mount.directory])
            #expect(plain.status != 0, "busy while a pipe is open")
            let lazy = try ChildProcess.run(["fusermount3", "-u", "-z", mount.directory])
            #expect(lazy.status == 0)
            #expect(!isMounted(mount.directory))
            usleep(200_000)
            #expect(mount.daemon.isRunning, "still serving the open pipe")
            #expect(Sys.write(fd, [1]) == .ok(1))
            close(fd)
            #expect(mount.daemon.wait(timeout: 5) == 0)
        }
    }

    /// Issue 12, item 15: after a lazy unmount no partner can come by the path, so an open
    /// waiting for one is answered ENXIO, as `npfs unmount` answers it, and the daemon
    /// exits once the kernel lets go; a pipe already open goes on working until closed.
    @Test func lazyUnmountAnswersAWaitingOpen() throws {
        try TestMount.with { mount in
            let cat = try ChildProcess(["cat", mount.path("NOBODY")])
            let fd = open(mount.path("HELD"), O_RDWR)
            #expect(fd >= 0)
            #expect(eventually { livePipes(mount) == ["HELD", "NOBODY"] && cat.state == "S" })
            let lazy = try ChildProcess.run(["fusermount3", "-u", "-z", mount.directory])
            #expect(lazy.status == 0)
            #expect(cat.wait(timeout: 5) == 1, "cat's open fails")
            #expect(cat.output.contains("No such device or address"), "\(cat.output)")
            #expect(mount.daemon.isRunning, "still serving the open pipe")
            #expect(Sys.write(fd, [7]) == .ok(1))
            var byte: UInt8 = 0
            #expect(read(fd, &byte, 1) == 1 && byte == 7)
            close(fd)
            #expect(mount.daemon.wait(timeout: 5) == 0)
        }
    }

    @Test func mountShRecoversAStaleMountAfterKillDashNine() throws {
        try TestMount.with { mount in
            let rings = (try? getfattr(mount.directory, "user.npfs.transport"))?.hasPrefix("transport=io_uring") == true
            mount.daemon.signal(SIGKILL)
            #expect(mount.daemon.wait(timeout: 5) == 128 + SIGKILL)
            var info = stat()
            // A listing reaches the daemon (a stat may come from the kernel's cache for a second).
            // Over io_uring, a request made while the kernel still tears the dead daemon's
            // rings down (a few milliseconds) ends ECONNABORTED or ECANCELED instead.
            let directory = opendir(mount.directory)
            let failure = errno
            #expect(directory == nil && (failure == ENOTCONN || rings && (failure == ECONNABORTED || failure == ECANCELED)),
                    "Transport endpoint is not connected: errno \(failure)")
            if let directory { closedir(directory) }
            let script = TestMount.packageRoot + "/mount.sh"
            let environment = ["NPFS_NO_BUILD": "1", "NPFS_BIN": TestMount.binary, "NPFS_NO_LINK": "1"]
            let first = try ChildProcess.run([script, mount.directory], timeout: 60, environment: environment)
            defer { _ = try? ChildProcess.run([TestMount.binary, "unmount", mount.directory], timeout: 15) }
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("stale"), "\(first.output)")
            #expect(stat(mount.directory, &info) == 0)
            // The new mount works, and mount.sh run again leaves it alone.
            let roundTrip = try ChildProcess.shell(
                "cat '\(mount.path("AGAIN"))' & sleep 0.2; echo again > '\(mount.path("AGAIN"))'; wait", timeout: 10)
            #expect(roundTrip.output == "again\n")
            let second = try ChildProcess.run([script, mount.directory], timeout: 60, environment: environment)
            #expect(second.status == 0)
            #expect(second.output.contains("already mounted"), "\(second.output)")
            let unmount = try ChildProcess.run([TestMount.binary, "unmount", mount.directory], timeout: 15)
            #expect(unmount.status == 0, "\(unmount.output)")
            #expect(!isMounted(mount.directory))
        }
    }

    @Test func backgroundMountReturnsWhenReadyAndUnmountStopsIt() throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        // `npfs DIR` means `npfs mount DIR`.
        let mounted = try ChildProcess.run([TestMount.binary, directory], timeout: 15)
        defer { if isMounted(directory) { _ = try? ChildProcess.run(["fusermount3", "-u", "-z", directory]) } }
        #expect(mounted.status == 0, "\(mounted.output)")
        #expect(isMounted(directory), "mounted by the time the command returns")
        let pid = try String(decoding: xattr(directory, "user.npfs.pid"), as: UTF8.self)
        #expect(Int32(pid) != nil && Int32(pid) != getpid())
        let unmount = try ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 15)
        #expect(unmount.status == 0, "\(unmount.output)")
        #expect(!isMounted(directory))
        #expect(hasExited(Int32(pid) ?? 0), "the daemon has exited")
    }
}

/// Gone, or a zombie (exited, not yet reaped by its parent).
func hasExited(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
}
