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
        let member = Caller(uid: 1002, gid: 1002, groups: { [500] })
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

    @Test func groupsAreLookedUpOnlyWhenTheyDecide() {
        let lookups = Mutex(0)
        let caller = Caller(uid: 1002, gid: 1002, groups: { lookups.withLock { $0 += 1 }; return [] })
        _ = Ownership(uid: 1001, gid: 500, permissions: 0o666).permits(caller, .readWrite)
        _ = Ownership(uid: 1002, gid: 500, permissions: 0o600).permits(caller, .readWrite)
        #expect(lookups.withLock { $0 } == 0, "group bits equal to the others', or the owner: no lookup")
        _ = Ownership(uid: 1001, gid: 500, permissions: 0o660).permits(caller, .readWrite)
        #expect(lookups.withLock { $0 } == 1)
    }

    @Test func chmodAndChownFollowTheirManPages() throws {
        let mine = Ownership(uid: 1001, gid: 1001, permissions: 0o600)
        #expect(try mine.changed(by: .alice, permissions: 0o640, uid: nil, gid: nil).permissions == 0o640)
        #expect(throws: Errno.notPermitted) { try mine.changed(by: .bob, permissions: 0o666, uid: nil, gid: nil) }
        #expect(throws: Errno.notPermitted) { try mine.changed(by: .alice, permissions: nil, uid: 1002, gid: nil) }
        #expect(try mine.changed(by: .alice, permissions: nil, uid: 1001, gid: nil) == mine, "chown to oneself")
        #expect(try mine.changed(by: .root, permissions: nil, uid: 1002, gid: 1002).uid == 1002)
        let inTeam = Caller(uid: 1001, gid: 1001, groups: { [500] })
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
