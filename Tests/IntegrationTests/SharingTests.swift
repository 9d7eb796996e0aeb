import Foundation
import Glibc
import Testing

/// Owners and modes with two real users on an `allow_other` mount: a pipe is its creator's,
/// with `pipe_mode`, enforced by the kernel and again by npfs on fresh attributes, and
/// only its owner (or root) changes its settings, by any route.
@Suite(.serialized, .enabled(if: TestUsers.canCreateUsers, "creating test users needs root (CI runs as root)"))
struct SharingTests {
    @Test func aPrivatePipeIsItsOwnersByEveryRoute() throws {
        try TestUsers.with(count: 2) { users in
            let (alice, bob) = (users.names[0], users.names[1])
            try TestMount.with(options: ["allow_other,pipe_mode=0600"]) { mount in
                let p = mount.path("P"), m = mount.directory
                // A name that is not live shows its opener what it would get.
                #expect(try users.run(as: bob, "stat -c '%U %a' '\(p)'").output == "\(bob) 600\n")
                let holder = try users.start(as: alice, "exec 3<>'\(p)'; exec sleep 60")
                defer { holder.signal(SIGKILL) }
                #expect(eventually { livePipes(mount) == ["P"] })
                // Bob's kernel saw himself as the owner a moment ago: refused all the same.
                let read = try users.run(as: bob, "cat '\(p)'")
                #expect(read.status != 0 && read.output.contains("Permission denied"), "\(read)")
                let write = try users.run(as: bob, "echo x > '\(p)'")
                #expect(write.status != 0 && write.output.contains("Permission denied"), "\(write)")
                let listing = try ChildProcess.run(["stat", "-c", "%A %U %G", p], timeout: 5).output
                #expect(listing == "-rw------- \(alice) \(alice)\n")
                // Not bob's to change or to read, by any route.
                for script in ["setfattr -n user.npfs.capacity -v 1M '\(p)'",
                               "setfattr -n user.npfs.pipe.P.capacity -v 1M '\(m)'",
                               "getfattr -n user.npfs.buffered '\(p)'",
                               "getfattr -n user.npfs.pipe.P.buffered '\(m)'",
                               "chmod 666 '\(p)'"] {
                    let result = try users.run(as: bob, script)
                    #expect(result.status != 0, "bob: \(script): \(result.output)")
                    #expect(result.output.contains("not permitted") || result.output.contains("Permission denied"),
                            "bob: \(script): \(result.output)")
                }
                #expect(try getfattr(p, "user.npfs.capacity") == "65536")
                // Alice's own, by every route.
                #expect(try users.run(as: alice, "setfattr -n user.npfs.pipe.P.capacity -v 1M '\(m)'").status == 0)
                #expect(try users.run(as: alice, "getfattr --absolute-names --only-values -n user.npfs.capacity '\(p)'").output == "1048576")
                #expect(try users.run(as: alice, "chmod 606 '\(p)'").status == 0)
                // The chmod lets bob in at once (with an open that does not ask for O_CREAT,
                // which protected_pipes refuses on another user's pipe).
                let allowed = try users.run(as: bob, "echo hi | dd of='\(p)' conv=nocreat status=none")
                #expect(allowed.status == 0, "\(allowed.output)")
                #expect(try getfattr(p, "user.npfs.buffered") == "3")
                // Only root gives a pipe away.
                #expect(try users.run(as: alice, "chown \(bob) '\(p)'").status != 0)
                #expect(try ChildProcess.run(["chown", bob, p], timeout: 5).status == 0)
                #expect(try ChildProcess.run(["stat", "-c", "%A %U", p], timeout: 5).output == "-rw----rw- \(bob)\n")
                #expect(try users.run(as: bob, "setfattr -n user.npfs.mode -v ring '\(p)'").status == 0)
            }
        }
    }

    @Test func aGroupSharedPipeAdmitsTheGroupOnly() throws {
        try TestUsers.with(count: 2, group: true) { users in
            let (alice, bob) = (users.names[0], users.names[1])
            let group = users.group ?? ""
            try users.addToGroup(alice)
            try TestMount.with(options: ["allow_other,pipe_mode=0660"]) { mount in
                let p = mount.path("TEAM")
                let holder = try users.start(as: alice, "exec 3<>'\(p)'; exec sleep 60")
                defer { holder.signal(SIGKILL) }
                #expect(eventually { livePipes(mount) == ["TEAM"] })
                #expect(try users.run(as: bob, "chgrp \(group) '\(p)'").status != 0, "not bob's pipe")
                #expect(try users.run(as: alice, "chgrp \(bob) '\(p)'").status != 0, "alice is not in bob's group")
                let chgrp = try users.run(as: alice, "chgrp \(group) '\(p)'")
                #expect(chgrp.status == 0, "\(chgrp.output)")
                #expect(try users.run(as: bob, "echo x > '\(p)'").output.contains("Permission denied"))
                try users.addToGroup(bob)
                let member = try users.run(as: bob, "echo x > '\(p)'")
                #expect(member.status == 0, "\(member.output)")
                #expect(try users.run(as: bob, "setfattr -n user.npfs.capacity -v 1M '\(p)'").status != 0,
                        "the group may use the pipe, not change it")
            }
        }
    }

    /// The owner, not only root, changes a pipe while a writer waits in it.
    @Test func theOwnerGrowsAPipeWhileAWriterWaits() throws {
        try TestUsers.with(count: 2) { users in
            let (alice, bob) = (users.names[0], users.names[1])
            try TestMount.with(options: ["allow_other"]) { mount in
                let p = mount.path("GROW"), m = mount.directory
                let holder = try users.start(as: alice, "exec 3<>'\(p)'; head -c 65536 /dev/zero >&3; exec sleep 60")
                defer { holder.signal(SIGKILL) }
                #expect(eventually { (try? getfattr(p, "user.npfs.buffered")) == "65536" })
                let writer = try users.start(as: alice, "head -c 10000 /dev/zero > '\(p)'")
                defer { writer.signal(SIGKILL) }
                usleep(300_000)
                #expect(writer.isRunning, "the pipe is full: the writer waits")
                let refused = try users.run(as: bob, "setfattr -n user.npfs.pipe.GROW.capacity -v 128K '\(m)'")
                #expect(refused.status != 0 && refused.output.contains("not permitted"), "\(refused.output)")
                #expect(writer.isRunning)
                let npfsRefused = try users.run(as: bob, "\(users.npfs) set '\(p)' capacity=128K")
                #expect(npfsRefused.status != 0 && npfsRefused.output.contains("not permitted"), "\(npfsRefused.output)")
                let grown = try users.run(as: alice, "\(users.npfs) set '\(p)' capacity=128K")
                #expect(grown.status == 0, "\(grown.output)")
                #expect(writer.wait(timeout: 5) == 0)
                #expect(try getfattr(p, "user.npfs.buffered") == "75536")
                // Beyond max_capacity (1M by default) only root may go.
                let beyond = try users.run(as: alice, "\(users.npfs) set '\(p)' capacity=2M")
                #expect(beyond.status != 0 && beyond.output.contains("beyond max_capacity"), "\(beyond.output)")
                #expect(try ChildProcess.run([TestMount.binary, "set", p, "capacity=2M"], timeout: 10).status == 0)
            }
        }
    }

    /// Issue 12, item 3: a squatter's world-writable pipe no longer catches another user's
    /// (or root's) `echo ... > NAME`; opens without O_CREAT, and group sharing, still work.
    @Test func aSquattedPipeDoesNotCatchOtherUsersWrites() throws {
        try TestUsers.with(count: 2) { users in
            let (alice, bob) = (users.names[0], users.names[1])
            try TestMount.with(options: ["allow_other"]) { mount in
                let p = mount.path("INBOX")
                let squatter = try users.start(as: bob, "exec 3<>'\(p)'; chmod 0622 '\(p)'; exec sleep 60")
                defer { squatter.signal(SIGKILL) }
                #expect(eventually { (try? ChildProcess.run(["stat", "-c", "%a", p], timeout: 5).output) == "622\n" })
                let stolen = try users.run(as: alice, "echo 'private message' > '\(p)'")
                #expect(stolen.status != 0 && stolen.output.contains("Permission denied"), "\(stolen)")
                let appended = try users.run(as: alice, "echo 'private message' >> '\(p)'")
                #expect(appended.status != 0 && appended.output.contains("Permission denied"), "\(appended)")
                let rooted = try ChildProcess.run(["sh", "-c", "echo 'root secret' > '\(p)'"], timeout: 10)
                #expect(rooted.status != 0 && rooted.output.contains("Permission denied"), "root too: \(rooted)")
                #expect(try getfattr(p, "user.npfs.buffered") == "0", "nothing reached the squatter")
                let plain = try users.run(as: alice, "printf x | dd of='\(p)' conv=nocreat,notrunc status=none")
                #expect(plain.status == 0, "an open without O_CREAT is the pipe's bits' to decide: \(plain.output)")
            }
            try TestMount.with(options: ["allow_other,protected_pipes=0"]) { mount in
                let p = mount.path("INBOX")
                let squatter = try users.start(as: bob, "exec 3<>'\(p)'; chmod 0622 '\(p)'; exec sleep 60")
                defer { squatter.signal(SIGKILL) }
                #expect(eventually { (try? ChildProcess.run(["stat", "-c", "%a", p], timeout: 5).output) == "622\n" })
                #expect(try users.run(as: alice, "echo hi > '\(p)'").status == 0, "protected_pipes=0 protects nothing")
            }
        }
    }

    /// Issue 12, items 1 and 2: one user filling their share of pipes or of waiting writes
    /// refuses only that user; another still creates pipes and waits to write.
    @Test func oneUserCannotLockTheOthersOut() throws {
        try TestUsers.with(count: 2) { users in
            let (alice, bob) = (users.names[0], users.names[1])
            // user_max_memory 256K: 64K of waiting writes each.
            try TestMount.with(options: ["allow_other,max_pipes=64,user_max_pipes=2,max_memory=1M"]) { mount in
                let m = mount.directory
                let holder = try users.start(as: alice, "exec 3<>'\(m)/A1' 4<>'\(m)/A2'; head -c 65536 /dev/zero >&3; exec sleep 60")
                defer { holder.signal(SIGKILL) }
                #expect(eventually { (try? getfattr(m + "/A1", "user.npfs.buffered")) == "65536" })
                let third = try users.run(as: alice, "exec 5<>'\(m)/A3'")
                #expect(third.status != 0 && third.output.contains("Too many open files"), "\(third)")
                let waiting = try users.start(as: alice, "dd if=/dev/zero of='\(m)/A1' bs=60000 count=1 conv=nocreat,notrunc status=none")
                defer { waiting.signal(SIGKILL) }
                #expect(eventually { (try? getfattr(m, "user.npfs.usage"))?.contains("\nwaiting=60000\n") == true })
                let refused = try users.run(as: alice, "dd if=/dev/zero of='\(m)/A1' bs=10000 count=1 conv=nocreat,notrunc status=none")
                #expect(refused.status != 0 && refused.output.contains("No buffer space available"), "\(refused)")
                // Bob is untouched by alice's full shares.
                let bobs = try users.start(as: bob, "exec 3<>'\(m)/B1'; head -c 65536 /dev/zero >&3; dd if=/dev/zero bs=60000 count=1 status=none >&3")
                defer { bobs.signal(SIGKILL) }
                #expect(eventually { (try? getfattr(m, "user.npfs.usage"))?.contains("\nwaiting=120000\n") == true },
                        "bob's write waits for room instead of failing")
                #expect(bobs.isRunning)
                #expect(try ChildProcess.run(["sh", "-c", "exec 3<>'\(m)/ROOT'"], timeout: 10).status == 0, "root creates pipes")
            }
        }
    }
}
