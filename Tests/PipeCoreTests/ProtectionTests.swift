import PipeCore
import SystemPackage
import Testing

/// Issue 12, item 3: `protected_pipes`, as `fs.protected_fifos`: an O_CREAT open of another
/// user's live pipe is refused unless the pipe is shared with the caller through its group.
@Suite struct ProtectionTests {
    static let team: UInt32 = 500
    static let carol = Caller(uid: 1003, gid: 1003, groups: [team])

    func registry(_ protection: PipeProtection) throws -> (PipeRegistry, InodeNumber) {
        let registry = PipeRegistry(configuration: .init(pipe: .defaults, protection: protection, mountOwner: 4000))
        return (registry, registry.lookup(try PipeName("INBOX")))
    }

    /// Bob squats INBOX and makes it world-writable: alice's `echo secret > INBOX` (O_CREAT) is
    /// refused, a plain open for writing is not, nor an open with O_CREAT of her own pipe.
    @Test func aSquattedPipeRefusesOCreatOpens() throws {
        let (registry, inode) = try registry(.group)
        guard case .done(.opened) = registry.open(inode, flags: 2, caller: .bob, waiter: RecordingWaiter()) else {
            Issue.record("bob's open"); return
        }
        _ = try registry.changeOwnership(of: inode, by: .bob, permissions: 0o622, uid: nil, gid: nil)
        #expect(registry.open(inode, flags: 1, caller: .alice, waiter: RecordingWaiter(), creating: true) == .done(.failed(.permissionDenied)))
        #expect(registry.open(inode, flags: 1, caller: .root, waiter: RecordingWaiter(), creating: true) == .done(.failed(.permissionDenied)),
                "root is protected too")
        if case .done(.opened(let handle)) = registry.open(inode, flags: 1, caller: .alice, waiter: RecordingWaiter()) {
            registry.release(handle)
        } else {
            Issue.record("an open without O_CREAT is the pipe's bits' to decide")
        }
        #expect(registry.open(inode, flags: 1, caller: .bob, waiter: RecordingWaiter(), creating: true) != .done(.failed(.permissionDenied)))
        let mine = registry.lookup(try PipeName("MINE"))
        #expect(registry.open(mine, flags: 2, caller: .alice, waiter: RecordingWaiter(), creating: true) != .done(.failed(.permissionDenied)),
                "creating a pipe is no open of another's")
    }

    /// A pipe shared on purpose through its group keeps working at level 1, not at level 2;
    /// the mount owner's pipes are never refused; level 0 refuses nothing.
    @Test func groupSharingTheMountOwnerAndTheLevels() throws {
        let shared = Ownership(uid: 1002, gid: Self.team, permissions: 0o660)
        #expect(!PipeProtection.group.refuses(Self.carol, .write, of: shared, mountOwner: 0))
        #expect(PipeProtection.group.refuses(.alice, .write, of: shared, mountOwner: 0), "alice is not in the team")
        #expect(PipeProtection.group.refuses(Self.carol, .write, of: Ownership(uid: 1002, gid: Self.team, permissions: 0o646), mountOwner: 0),
                "world-writable by a stranger, not group-writable")
        #expect(PipeProtection.strict.refuses(Self.carol, .write, of: shared, mountOwner: 0))
        #expect(!PipeProtection.strict.refuses(Self.carol, .write, of: Ownership(uid: 4000, gid: 4000, permissions: 0o666), mountOwner: 4000))
        #expect(!PipeProtection.off.refuses(.alice, .write, of: Ownership(uid: 1002, gid: 1002, permissions: 0o666), mountOwner: 0))
    }

    @Test func theCallsSyscallTellsWhetherItCreates() {
        #expect(OpenSyscall.usesCreate("257 0xffffff9c 0x5581473b2910 0x241 0x1b6 0x7f0c3c3dfc70 0x1 0x7ffe8ea7af30 0x7f0c3c304011") == true)
        #expect(OpenSyscall.usesCreate("257 0xffffff9c 0x7f0331d998b0 0x80001 0x0 0x0 0x0 0x7fff896a9d30 0x7f0331f16011") == false)
        #expect(OpenSyscall.usesCreate("2 0x55d0 0x441 0x1b6 0x0 0x0 0x0 0x7fff 0x7f00") == true)
        #expect(OpenSyscall.usesCreate("85 0x55d0 0x1b6 0x0 0x0 0x0 0x0 0x7fff 0x7f00") == true)
        #expect(OpenSyscall.usesCreate("437 0xffffff9c 0x55d0 0x7fff 0x18 0x0 0x0 0x7fff 0x7f00") == nil, "openat2 cannot be read")
        #expect(OpenSyscall.usesCreate("running") == nil)
        #expect(OpenSyscall.usesCreate("257 0xffffff9c") == nil)
        #expect(OpenSyscall.likelyCreate(flags: 0o1001) && OpenSyscall.likelyCreate(flags: 0o2001))
        #expect(!OpenSyscall.likelyCreate(flags: 0o1) && !OpenSyscall.likelyCreate(flags: 0o1000))
    }
}
