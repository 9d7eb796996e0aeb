import Foundation
import Glibc
import Testing

/// Issue 8, item 2: an open that waits for its partner fails ETIMEDOUT after
/// `open_timeout` seconds and leaves no trace.
@Suite(.serialized) struct OpenTimeoutMountTests {
    @Test func aWaitingOpenTimesOutOnTimeAndLeavesNoPipe() throws {
        try TestMount.with(options: ["open_timeout=1"]) { mount in
            let path = mount.path("LONELY")
            let start = Date()
            let call = BlockingCall { open(path, O_WRONLY) >= 0 ? .ok(0) : .error(errno) }
            let outcome = call.wait(timeout: 5)
            let elapsed = Date().timeIntervalSince(start)
            #expect(outcome == .error(ETIMEDOUT))
            #expect(elapsed >= 0.9 && elapsed <= 1.1, "fired after \(elapsed) s, not within 10 % of 1 s")
            let listing = try FileManager.default.contentsOfDirectory(atPath: mount.directory)
            #expect(listing.isEmpty, "the pipe the open made is gone: \(listing)")
        }
    }

    /// Per pipe: the setting changes later opens; an open that waits keeps its partner's.
    @Test func aPipeOwnTimeoutEndsLaterOpensOnly() throws {
        try TestMount.with { mount in
            let path = mount.path("P")
            let cat = try ChildProcess(["cat", path])
            #expect(eventually { (try? getfattr(path, "user.npfs.readers")) == "1" }, "cat waits in open")
            let set = try ChildProcess.run([TestMount.binary, "set", path, "open_timeout=0.5"], timeout: 5)
            #expect(set.status == 0, "\(set.output)")
            #expect(try getfattr(path, "user.npfs.open_timeout") == "0.5")
            let second = BlockingCall { open(path, O_RDONLY) >= 0 ? .ok(0) : .error(errno) }
            #expect(second.wait(timeout: 5) == .error(ETIMEDOUT))
            #expect(try getfattr(path, "user.npfs.readers") == "1", "the expired open no longer counts")
            #expect(cat.isRunning, "cat still waits: it was queued before the change")
            let written = try ChildProcess.shell("echo hello > '\(path)'", timeout: 5)
            #expect(written.status == 0)
            #expect(cat.wait(timeout: 5) == 0)
            #expect(cat.output == "hello\n")
        }
    }
}
