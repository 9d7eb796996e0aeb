import Dispatch
import PipeCore
import Synchronization
import SystemPackage
import Testing

/// Owners, groups and permission bits: generic_permission's rules, chmod's and chown's,
/// and who may change a pipe's settings.
@Suite struct OwnershipTests {
    typealias F = Fixture

    @Test func permissionClassesFollowGenericPermission() {
        let groupShared = Ownership(uid: 1001, gid: 500, permissions: 0o640)
        let member = Caller(uid: 1002, gid: 1002, groups: [500])
        #expect(groupShared.permits(.alice, .readWrite))
        #expect(groupShared.permits(member, .read))
        #expect(!groupShared.permits(member, .write))
        #expect(!groupShared.permits(.bob, .read), "bob is not in group 500")
        #expect(groupShared.permits(.root, .readWrite))
        // The owner's class is the owner's bits only, even where the group's grant more.
        #expect(!Ownership(uid: 1001, gid: 1001, permissions: 0o066).permits(.alice, .read))
        // Other users get the others' bits.
        #expect(Ownership(uid: 1001, gid: 1001, permissions: 0o602).permits(.bob, .write))
        #expect(!Ownership(uid: 1001, gid: 1001, permissions: 0o602).permits(.bob, .read))
    }

    @Test func groupsAreReadOnlyWhenTheyDecide() {
        let reads = Mutex(0)
        let caller = Caller(uid: 1002, gid: 1002, pid: 7) { _ in reads.withLock { $0 += 1 }; return [500] }
        let sameBits = Ownership(uid: 1001, gid: 500, permissions: 0o666)
        #expect(caller.answer(about: 500) { sameBits.permits($0, .readWrite) } == true)
        let owned = Ownership(uid: 1002, gid: 500, permissions: 0o600)
        #expect(caller.answer(about: 500) { owned.permits($0, .readWrite) } == true)
        #expect(reads.withLock { $0 } == 0, "group bits equal to the others', or the owner: no read")
        let shared = Ownership(uid: 1001, gid: 500, permissions: 0o660)
        #expect(caller.answer(about: 500) { shared.permits($0, .readWrite) } == nil, "membership decides")
        var reading = caller
        #expect(reading.deciding(about: 500) { shared.permits($0, .readWrite) })
        #expect(reading.deciding(about: 600) { Ownership(uid: 1001, gid: 600, permissions: 0o660).permits($0, .read) } == false)
        #expect(reads.withLock { $0 } == 1, "read once, then kept")
        #expect(reading.groups == [500])
    }

    @Test func groupsComeFromTheStatusLine() {
        let status = "Name:\tbash\nUid:\t1002\t1002\t1002\t1002\nGroups:\t24 27 500 \nNgid:\t0\n"
        #expect(ProcStatus.groups(in: status) == [24, 27, 500])
        #expect(ProcStatus.groups(in: "Groups:\t\n") == [])
        #expect(ProcStatus.groups(in: "Name:\tx\n") == [])
        #expect(ProcStatus.field("Name", in: status) == "bash")
        #expect(ProcStatus.field("Uid", in: status) == "1002\t1002\t1002\t1002")
        #expect(ProcStatus.field("Tgid", in: status) == nil)
        // Only whole keys at a line's start; the last line needs no newline; values may be any UTF-8.
        let odd = "XName:\tno\nName:\t  caf\u{E9} \u{1F600}\t\nTgid:\t42"
        #expect(ProcStatus.field("Name", in: odd) == "caf\u{E9} \u{1F600}")
        #expect(ProcStatus.field("Tgid", in: odd) == "42")
        #expect(ProcStatus.field("Tg", in: odd) == nil)
        #expect(ProcStatus.field("Name", in: "") == nil)
        #expect(ProcStatus.field("Name", in: "Name:") == "")
    }

    /// Issue 12, item 14: reading groups costs a read of /proc, which must never happen with
    /// a lock held. The reader here checks, from another thread, that the registry and the
    /// pipe can be used at that moment.
    @Test func groupsAreReadWithNoLockHeld() throws {
        let registry = PipeRegistry(configuration: .init(pipe: .defaults, protection: .group, mountOwner: 4000))
        let inode = registry.lookup(try PipeName("TEAM"))
        guard case .done(.opened) = registry.open(inode, flags: F.readWrite, caller: .alice, waiter: RecordingWaiter()) else {
            Issue.record("alice's open"); return
        }
        _ = try registry.changeOwnership(of: inode, by: .root, permissions: 0o660, uid: nil, gid: 500)
        let readsUnderLock = Mutex(0), reads = Mutex(0)
        let carol = Caller(uid: 1003, gid: 1003, pid: 9) { _ in
            reads.withLock { $0 += 1 }
            let free = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                _ = registry.usage
                _ = try? registry.livePipe(inode).status
                free.signal()
            }
            if free.wait(timeout: .now() + 2) == .timedOut { readsUnderLock.withLock { $0 += 1 } }
            return [500]
        }
        guard case .done(.opened) = registry.open(inode, flags: F.write, caller: carol, waiter: RecordingWaiter(), creating: true) else {
            Issue.record("carol is in the pipe's group"); return
        }
        #expect(throws: Never.self) { try registry.attribute(.buffered, of: inode, caller: carol) }
        #expect(throws: Never.self) { try registry.clients(of: inode, caller: carol) }
        #expect(throws: Never.self) { try registry.peek(inode, max: 10, caller: carol) }
        #expect(!registry.statusPage(from: 0, size: StatusPage.maximumSize, caller: carol).isEmpty)
        _ = try? registry.changeOwnership(of: inode, by: carol, permissions: nil, uid: nil, gid: 500)
        #expect(reads.withLock { $0 } >= 5)
        #expect(readsUnderLock.withLock { $0 } == 0, "groups were read with a lock held")
    }

    @Test func chmodAndChownFollowTheirManPages() throws {
        let mine = Ownership(uid: 1001, gid: 1001, permissions: 0o600)
        #expect(try mine.changed(by: .alice, permissions: 0o640, uid: nil, gid: nil).permissions == 0o640)
        #expect(throws: Errno.notPermitted) { try mine.changed(by: .bob, permissions: 0o666, uid: nil, gid: nil) }
        #expect(throws: Errno.notPermitted) { try mine.changed(by: .alice, permissions: nil, uid: 1002, gid: nil) }
        #expect(try mine.changed(by: .alice, permissions: nil, uid: 1001, gid: nil) == mine, "chown to oneself")
        #expect(try mine.changed(by: .root, permissions: nil, uid: 1002, gid: 1002).uid == 1002)
        let inTeam = Caller(uid: 1001, gid: 1001, groups: [500])
        #expect(try mine.changed(by: inTeam, permissions: nil, uid: nil, gid: 500).gid == 500)
        #expect(throws: Errno.notPermitted) { try mine.changed(by: .alice, permissions: nil, uid: nil, gid: 500) }
        #expect(throws: Errno.notPermitted) { try mine.changed(by: .bob, permissions: nil, uid: nil, gid: 1002) }
    }

    @Test func theCreatorOwnsThePipeWithThePipeMode() throws {
        let registry = PipeRegistry(configuration: .init(pipe: .defaults, pipeMode: 0o600))
        let inode = registry.lookup(try PipeName("P"))
        #expect(registry.defaultOwnership(for: .bob) == Ownership(uid: 1002, gid: 1002, permissions: 0o600),
                "a name that is not live shows what its opener would get")
        guard case .done(.opened(let handle)) = registry.open(inode, flags: F.readWrite, caller: .alice, waiter: RecordingWaiter()) else {
            Issue.record("alice could not create her pipe"); return
        }
        #expect(try registry.livePipe(inode).ownership == Ownership(uid: 1001, gid: 1001, permissions: 0o600))
        #expect(registry.open(inode, flags: F.read | F.nonblocking, caller: .bob, waiter: RecordingWaiter())
                == .done(.failed(.permissionDenied)))
        guard case .done(.opened(let rootHandle)) = registry.open(inode, flags: F.read | F.nonblocking, caller: .root,
                                                                   waiter: RecordingWaiter()) else {
            Issue.record("root could not open"); return
        }
        #expect(try registry.livePipe(inode).status.readers == 2, "bob's refused open was not counted")
        // Settings: the owner and root only; figures: whoever may read the pipe.
        #expect(throws: Errno.notPermitted) { try registry.setAttribute(.capacity, to: "1M", of: inode, caller: .bob) }
        #expect(throws: Errno.permissionDenied) { try registry.attribute(.buffered, of: inode, caller: .bob) }
        try registry.setAttribute(.capacity, to: "1M", of: inode, caller: .alice)
        try registry.setAttribute(.mode, to: "ring", of: inode, caller: .root)
        #expect(try registry.attribute(.capacity, of: inode, caller: .alice) == "1048576")
        // chmod opens it to bob at once.
        #expect(throws: Errno.notPermitted) { try registry.changeOwnership(of: inode, by: .bob, permissions: 0o666, uid: nil, gid: nil) }
        _ = try registry.changeOwnership(of: inode, by: .alice, permissions: 0o606, uid: nil, gid: nil)
        guard case .done(.opened(let bobs)) = registry.open(inode, flags: F.write, caller: .bob, waiter: RecordingWaiter()) else {
            Issue.record("bob could not open after chmod"); return
        }
        #expect(try registry.attribute(.writers, of: inode, caller: .bob) == "2")
        for open in [handle, rootHandle, bobs] { registry.release(open) }
        #expect(throws: Errno.noSuchFileOrDirectory) {
            try registry.changeOwnership(of: inode, by: .alice, permissions: 0o600, uid: nil, gid: nil)
        }
        // The next creator owns the next pipe of that name.
        guard case .done(.opened) = registry.open(inode, flags: F.readWrite, caller: .bob, waiter: RecordingWaiter()) else {
            Issue.record("bob could not create the pipe anew"); return
        }
        #expect(try registry.livePipe(inode).ownership.uid == 1002)
    }
}
