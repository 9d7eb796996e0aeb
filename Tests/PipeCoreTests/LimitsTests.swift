import PipeCore
import SystemPackage
import Testing

/// The mount's limits: pipes, memory in all and per user, the largest capacity, and the
/// bytes of waiting writes; what each refusal answers and that usage goes back down.
@Suite struct LimitsTests {
    typealias F = Fixture
    static let k64 = 65_536

    func registry(_ limits: MountLimits) -> PipeRegistry {
        PipeRegistry(configuration: .init(pipe: .defaults, limits: limits))
    }

    func open(_ registry: PipeRegistry, _ name: String, as caller: Caller = .alice, flags: Int32 = F.readWrite) throws -> OpenResult {
        registry.open(registry.lookup(try PipeName(name)), flags: flags, caller: caller, waiter: RecordingWaiter())
    }

    func handle(_ attempt: OpenResult) -> PipeHandle? {
        if case .done(.opened(let handle)) = attempt { handle } else { nil }
    }

    @Test func tooManyPipesIsENFILE() throws {
        let registry = registry(MountLimits(maxPipes: 2, maxMemory: 1 << 30, userMaxMemory: 1 << 30, maxCapacity: 1 << 20))
        let a = handle(try open(registry, "A"))
        #expect(handle(try open(registry, "B")) != nil)
        let second = handle(try open(registry, "A"))
        #expect(second != nil, "another open of a live pipe is no new pipe")
        #expect(try open(registry, "C") == .done(.failed(.tooManyOpenFilesInSystem)))
        #expect(registry.livePipes().count == 2)
        #expect(registry.usage.pipes == 2)
        if let a { registry.release(a) }
        #expect(try open(registry, "C") == .done(.failed(.tooManyOpenFilesInSystem)), "A is still open once")
        if let second { registry.release(second) }
        #expect(registry.usage.pipes == 1, "the last close of A freed it")
        #expect(handle(try open(registry, "C")) != nil)
    }

    @Test func memoryIsReservedFromCreationAndGivenBack() throws {
        // Room for the opens too, 512 bytes each.
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 3 * Self.k64 + 2048, userMaxMemory: 2 * Self.k64 + 1024,
                                            maxCapacity: 1 << 20))
        var handles = [handle(try open(registry, "A")), handle(try open(registry, "B"))].compactMap { $0 }
        #expect(handles.count == 2)
        #expect(registry.usage.reserved == 2 * Self.k64 + 1024 && registry.usage.opens == 2)
        #expect(try open(registry, "C") == .done(.failed(.noSpace)), "alice's share is full")
        handles += [handle(try open(registry, "C", as: .bob))].compactMap { $0 }
        #expect(handles.count == 3, "bob has his own share")
        #expect(try open(registry, "D", as: .root) == .done(.failed(.noSpace)), "the mount's memory is full, even for root")
        // A capacity change is charged too, and a shrink gives memory back.
        let a = registry.lookup(try PipeName("A"))
        #expect(throws: Errno.noSpace) { try registry.setAttribute(.capacity, to: "128K", of: a, caller: .alice) }
        // Issue 12, item 1: a pipe stays reserved at its creation capacity however it shrinks.
        try registry.setAttribute(.capacity, to: "4K", of: a, caller: .alice)
        #expect(registry.usage.reserved == 3 * Self.k64 + 1536)
        #expect(try open(registry, "E") == .done(.failed(.noSpace)), "shrinking A made no room")
        try registry.setAttribute(.capacity, to: "64K", of: a, caller: .alice)
        for open in handles { registry.release(open) }
        let usage = registry.usage
        #expect(usage.pipes == 0 && usage.reserved == 0 && usage.reservedByUser.isEmpty, "\(usage)")
    }

    @Test func rootIsExemptFromThePerUserShareOnly() throws {
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 4 * Self.k64 + 2048, userMaxMemory: Self.k64 + 1024, maxCapacity: 1 << 20))
        #expect(handle(try open(registry, "R1", as: .root)) != nil)
        #expect(handle(try open(registry, "R2", as: .root)) != nil)
        #expect(handle(try open(registry, "A1")) != nil)
        #expect(try open(registry, "A2") == .done(.failed(.noSpace)))
        // chown takes the reservation along: alice's pipe given to root frees her share.
        let a1 = registry.lookup(try PipeName("A1"))
        _ = try registry.changeOwnership(of: a1, by: .root, permissions: nil, uid: 0, gid: 0)
        #expect(registry.usage.reservedByUser[1001] == MountLimits.openCost, "her open stays hers")
        #expect(handle(try open(registry, "A2")) != nil)
    }

    @Test func capacitiesAboveMaxCapacityAreRootsToGive() throws {
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 1 << 30, userMaxMemory: 1 << 30, maxCapacity: 1 << 20))
        #expect(handle(try open(registry, "A")) != nil)
        let a = registry.lookup(try PipeName("A"))
        try registry.setAttribute(.capacity, to: "1M", of: a, caller: .alice)
        #expect(throws: Errno.notPermitted) { try registry.setAttribute(.capacity, to: "2M", of: a, caller: .alice) }
        try registry.setAttribute(.capacity, to: "2M", of: a, caller: .root)
        #expect(registry.usage.reserved == 2 << 20 + 512)
    }

    @Test func waitingWritesShareABudget() throws {
        // A quarter of max_memory: 64 KiB of waiting writes.
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 4 * Self.k64, userMaxMemory: 4 * Self.k64, maxCapacity: 1 << 20))
        guard let both = handle(try open(registry, "A")) else { Issue.record("open failed"); return }
        let write: ([UInt8], RecordingWaiter?) -> WriteResult = { bytes, waiter in
            bytes.withUnsafeBytes { registry.write(both, bytes: $0, offset: 0, flags: 0, waiter: waiter) }
        }
        #expect(write(.pattern(Self.k64), nil) == .done(.written(Self.k64)))
        let first = RecordingWaiter()
        #expect(write(.pattern(40_000), first) == .queued)
        #expect(registry.usage.waitingBytes == 40_000)
        let second = RecordingWaiter()
        #expect(write(.pattern(30_000), second) == .done(.failed(.noBufferSpace)), "40000 + 30000 > 65536")
        #expect(registry.read(both, size: 1 << 20, offset: 0, flags: 0, waiter: nil)
                == .done(.data(.pattern(Self.k64) + .pattern(40_000))), "the read takes the waiting write's bytes too")
        #expect(first.reply == .written(40_000))
        #expect(registry.usage.waitingBytes == 0, "the copy is given back once the write is done")
        // Interrupted and abandoned waits give their bytes back too.
        let third = RecordingWaiter()
        #expect(write(.pattern(Self.k64), nil) == .done(.written(Self.k64)), "the read emptied the pipe")
        #expect(write(.pattern(50_000), third) == .queued)
        #expect(registry.usage.waitingBytes == 50_000)
        third.markInterrupted()
        registry.interrupt(third, inode: registry.lookup(try PipeName("A")))
        #expect(third.reply == .failed(.interrupted))
        #expect(registry.usage.waitingBytes == 0)
    }

    @Test func theOldestIdleNamesAreGivenBackToTheKernel() throws {
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 1 << 30, userMaxMemory: 1 << 30, maxCapacity: 1 << 20,
                                            maxIdleNames: 2))
        let a = registry.lookup(try PipeName("A"))
        let b = registry.lookup(try PipeName("B"))
        #expect(registry.namesToForget().isEmpty)
        _ = registry.lookup(try PipeName("C"))
        #expect(registry.namesToForget().map(\.description) == ["A"], "the oldest idle name")
        #expect(registry.namesToForget().isEmpty, "asked once: A is being forgotten")
        #expect(registry.usage.idleNames == 3, "until the kernel's forget")
        registry.forget(a, count: 1)
        #expect(registry.usage.idleNames == 2)
        // A live pipe is no idle name; when it is freed it is the newest idle name.
        guard case .done(.opened(let open)) = registry.open(b, flags: F.readWrite, caller: .alice, waiter: RecordingWaiter()) else {
            Issue.record("open failed"); return
        }
        _ = registry.lookup(try PipeName("D"))
        #expect(registry.namesToForget().isEmpty, "C and D are idle, B is live")
        registry.release(open)
        #expect(registry.namesToForget().map(\.description) == ["C"])
        // A name looked up again while being forgotten is idle again, and counted.
        _ = registry.lookup(try PipeName("C"))
        #expect(registry.namesToForget().map(\.description) == ["D"])
        // Names idle for long enough are given back however few there are.
        #expect(registry.namesToForget(idleFor: 5).isEmpty, "C went idle just now")
        let later = Timestamp.monotonicSeconds() + 6
        #expect(registry.namesToForget(idleFor: 5, now: later).map(\.description) == ["B", "C"])
    }

    /// Issue 12, item 1: each user has a share of the pipes, and the last 64th are root's:
    /// one user filling the table no longer locks everyone else (root included) out.
    @Test func pipesAreSharedByUserWithAReserveForRoot() throws {
        let registry = registry(MountLimits(maxPipes: 128, userMaxPipes: 40, maxMemory: 1 << 40, userMaxMemory: 1 << 40,
                                            maxCapacity: 1 << 20))
        let users = (1001...1004).map { Caller(uid: UInt32($0), gid: UInt32($0)) }
        var count = 0
        for user in users.prefix(3) {
            for _ in 0..<40 {
                #expect(handle(try open(registry, "P\(count)", as: user)) != nil)
                count += 1
            }
            #expect(try open(registry, "P\(count)", as: user) == .done(.failed(.tooManyOpenFiles)), "beyond the user's share: EMFILE")
        }
        for _ in 0..<6 {
            #expect(handle(try open(registry, "P\(count)", as: users[3])) != nil)
            count += 1
        }
        #expect(try open(registry, "P\(count)", as: users[3]) == .done(.failed(.tooManyOpenFilesInSystem)), "the last 2 are root's")
        #expect(handle(try open(registry, "R0", as: .root)) != nil)
        #expect(handle(try open(registry, "R1", as: .root)) != nil)
        #expect(try open(registry, "R2", as: .root) == .done(.failed(.tooManyOpenFilesInSystem)))
        #expect(registry.usage.pipesByUser[1001] == 40 && registry.usage.pipesByUser[0] == 2)
        // Given to root, a pipe leaves its old owner's share.
        _ = try registry.changeOwnership(of: registry.lookup(try PipeName("P0")), by: .root, permissions: nil, uid: 0, gid: 0)
        #expect(registry.usage.pipesByUser[1001] == 39)
        #expect(registry.usage(of: 1001).report(registry.configuration.limits, user: 1001).contains("user_pipes=39\nuser_max_pipes=40\n"))
    }

    /// Issue 12, item 2: each user's waiting writes have their own share: one user holding
    /// theirs full refuses only that user, never another within theirs.
    @Test func waitingWritesAreSharedByUser() throws {
        // user_max_memory 256K: 64K of waiting writes per user.
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 1 << 30, userMaxMemory: 4 * Self.k64, maxCapacity: 1 << 20))
        guard let mine = handle(try open(registry, "A")), let bobs = handle(try open(registry, "A", as: .bob)) else {
            Issue.record("open failed"); return
        }
        let write: (PipeHandle, [UInt8], RecordingWaiter?) -> WriteResult = { handle, bytes, waiter in
            bytes.withUnsafeBytes { registry.write(handle, bytes: $0, offset: 0, flags: 0, waiter: waiter) }
        }
        #expect(write(mine, .pattern(Self.k64), nil) == .done(.written(Self.k64)), "the pipe is full")
        #expect(write(mine, .pattern(60_000), RecordingWaiter()) == .queued)
        #expect(write(mine, .pattern(10_000), RecordingWaiter()) == .done(.failed(.noBufferSpace)), "alice is beyond her share")
        #expect(write(bobs, .pattern(60_000), RecordingWaiter()) == .queued, "bob's share is his own")
        #expect(write(mine, .pattern(6000), RecordingWaiter()) == .done(.failed(.noBufferSpace)))
        let usage = registry.usage(of: 1002)
        #expect(usage.waitingBytes == 120_000 && usage.userWaitingBytes == 60_000)
        #expect(registry.usage(of: 0).report(registry.configuration.limits, user: 0).contains("user_max_waiting=\((1 << 30) / 4)\n"))
    }

    /// Issue 12, item 2: opens count against their opener's memory.
    @Test func opensCountAgainstTheOpenersMemory() throws {
        let registry = registry(MountLimits(maxPipes: 100, maxMemory: 1 << 30, userMaxMemory: Self.k64 + 2 * MountLimits.openCost,
                                            maxCapacity: 1 << 20))
        #expect(handle(try open(registry, "A")) != nil)
        #expect(handle(try open(registry, "A")) != nil)
        #expect(try open(registry, "A") == .done(.failed(.noSpace)), "alice's share holds her pipe and two opens")
        #expect(handle(try open(registry, "A", as: .bob)) != nil, "bob's open is his")
        #expect(registry.usage.opens == 3 && registry.usage.reservedByUser[1002] == MountLimits.openCost)
    }
}
