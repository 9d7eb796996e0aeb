import SystemPackage

/// A pipe's machine as an executor that keeps it outside this process runs it (the
/// cluster's, in a PostgreSQL row): decoded from bytes, stepped once, encoded again.
/// The same `PipeMachine` decides; only the effects differ from a local pipe's: bytes lent
/// to reads are copied into the answer or the replies, since they travel to other hosts.
package struct SharedMachine<Buffer: StoredBuffer & ~Copyable>: ~Copyable, Sendable {
    var machine: PipeMachine<Buffer>
    /// What the bytes of waiting writes are charged to while decoded.
    private let budget: ByteBudget

    package init(config: PipeConfig, ownership: Ownership, at now: Timestamp, budget: ByteBudget) {
        machine = PipeMachine(config: config, ownership: ownership, at: now)
        self.budget = budget
    }

    /// The machine `encoded` gave; a buffer kept elsewhere reads its bytes from `source`.
    package init(decoding bytes: [UInt8], budget: ByteBudget, source: (any PageSource)? = nil) throws(StateDecodingError) {
        machine = try PipeMachine(decoding: bytes, budget: budget, source: source)
        self.budget = budget
    }

    package var encoded: [UInt8] { machine.encoded() }
    package var status: PipeStatus { machine.status }
    package var ownership: Ownership { machine.ownership }
    package var readers: Int { machine.readers }
    package var writers: Int { machine.writers }
    /// Every wait queued now.
    package var waitIDs: [WaitID] { machine.waitIDs }
    /// What each open waits for now.
    package var waitingOpens: [OpenID: PipeClient.Waiting] { machine.waitingOpens }
    /// Broadcast: what each reader lost.
    package var losses: [OpenID: UInt64] { machine.delivery.inspectBroadcast { $0.cursors.losses(base: $0.base) } ?? [:] }
    /// The reading opens of `host` (waiting ones too).
    package func readerOpens(of host: HostID) -> Set<OpenID> { machine.readerOpens.filter { $0.host == host } }
    /// No open and no wait is left, and it is not persisted: the pipe can go.
    package var isUnused: Bool { !machine.persist && machine.readers == 0 && machine.writers == 0 && machine.waitIDs.isEmpty }
    /// Persisted: its commits wait for the server's disk.
    package var isPersisted: Bool { machine.persist }
    /// Internally consistent (for tests).
    package var isConsistent: Bool { machine.isConsistent }

    package func readiness(_ open: OpenID, access: AccessMode, hangUpVersion: UInt64) -> PollEvents {
        machine.readiness(open, access: access, hangUpVersion: hangUpVersion)
    }

    package func peek(_ max: Int, reader: OpenID?) -> [UInt8] { machine.peek(max, reader: reader) }

    /// An open as `caller` may make it (see `LocalPipe.open`): `.needsGroups` if the
    /// caller's groups decide and were not read.
    package mutating func open(_ open: OpenID, access: AccessMode, nonblocking: Bool, caller: Caller, protection: PipeProtection,
                               mountOwner: UInt32, wait: WaitOffer, at now: Timestamp) -> (OpenAnswer, SharedEffects) {
        let ownership = machine.ownership
        let permitted = caller.answer(about: ownership.gid) { caller in
            ownership.permits(caller, access) && !protection.refuses(caller, access, of: ownership, mountOwner: mountOwner)
        }
        guard let permitted else { return (.needsGroups(ownership.gid), SharedEffects()) }
        guard permitted else { return (.result(.done(.failed(.permissionDenied)), hangUpVersion: 0), SharedEffects()) }
        var step = Transition(at: now)
        let (attempt, hangUpVersion) = machine.open(open, access: access, nonblocking: nonblocking, wait: wait, &step)
        return (.result(attempt, hangUpVersion: hangUpVersion), SharedEffects(step, lent: []))
    }

    package mutating func close(_ open: OpenID, access: AccessMode, at now: Timestamp) -> SharedEffects {
        run(at: now) { machine, step, lend in machine.close(open, access: access, &step, lend: lend) }.1
    }

    /// A read; bytes read now are the answer's `.data`.
    package mutating func read(_ open: OpenID, size: Int, offset: Int64 = 0, nonblocking: Bool, wait: WaitOffer?,
                               at now: Timestamp) -> (ReadReply?, ReadResult, SharedEffects) {
        let (attempt, effects, caller) = run(at: now) { machine, step, lend in
            machine.read(open, size: size, offset: offset, nonblocking: nonblocking, wait: wait, &step, lend: lend)
        }
        switch attempt {
        case .answered: return (.data(caller ?? []), attempt, effects)
        case .done(let reply): return (reply, attempt, effects)
        case .mustWait, .queued: return (nil, attempt, effects)
        }
    }

    /// A write; one that waits keeps its bytes in the machine (charged to the budget).
    package mutating func write(_ open: OpenID, _ bytes: [UInt8], offset: Int64 = 0, nonblocking: Bool, wait: WaitOffer?,
                                at now: Timestamp) -> (WriteResult, SharedEffects) {
        let budget = self.budget
        let (attempt, effects, _) = run(at: now) { machine, step, lend -> WriteResult in
            bytes.withUnsafeBytes { raw -> WriteResult in
                switch machine.write(open, raw, offset: offset, nonblocking: nonblocking, wait: wait, &step, lend: lend) {
                case .attempt(let decided):
                    return decided
                case .mustKeep(let taken, let atomic):
                    guard let wait else { return .mustWait }
                    let kept = WaitingBytes(copying: UnsafeRawBufferPointer(rebasing: raw[taken...]), budget: budget, uid: 0)
                    return machine.queueWrite(wait.id, open: open, kept: kept, taken: taken, atomic: atomic, &step, lend: lend)
                }
            }
        }
        return (attempt, effects)
    }

    /// Withdraws a wait (see `PipeMachine.cancel`): what it waited in, or nil if it no longer waits.
    package mutating func cancel(_ wait: WaitID, because reason: Withdrawal, at now: Timestamp) -> (CancelledOpen?, SharedEffects) {
        let (cancelled, effects, _) = run(at: now) { machine, step, lend -> CancelledOpen? in
            switch machine.cancel(wait, because: reason, &step, lend: lend) {
            case .open(let open): return .open(open)
            case .read: return .read
            case .write: return .write
            case nil: return nil
            }
        }
        return (cancelled, effects)
    }

    /// A host is gone (its daemon died, or it was cut off): its waits are withdrawn as
    /// if interrupted, then `opens` (its completed opens) closed, as the kernel closes a
    /// dead process's descriptors. Replies meant for the host itself are left out.
    package mutating func leave(_ host: HostID, opens: [(OpenID, AccessMode)], at now: Timestamp) -> SharedEffects {
        var effects = SharedEffects()
        var withdrawn: Set<OpenID> = []
        for wait in machine.waitIDs where wait.host == host {
            let (cancelled, cancelEffects) = cancel(wait, because: .interrupted, at: now)
            if case .open(let open) = cancelled { withdrawn.insert(open) }
            effects.merge(cancelEffects)
        }
        // A waiting open was undone by its withdrawal: only completed opens are closed.
        for (open, access) in opens where open.host == host && !withdrawn.contains(open) {
            effects.merge(close(open, access: access, at: now))
        }
        effects.replies.removeAll { $0.wait.host == host }
        return effects
    }

    package mutating func apply(_ setting: PipeSetting, at now: Timestamp) -> (Errno?, SharedEffects) {
        let (error, effects, _) = run(at: now) { machine, step, lend in machine.apply(setting, &step, lend: lend) }
        return (error, effects)
    }

    /// `rm` (see `PipeMachine.unpersist`).
    package mutating func unpersist(by caller: Caller) -> Errno? { machine.unpersist(by: caller) }

    /// chmod and chown as `caller` may (see `Ownership.changed`).
    package mutating func changeOwnership(by caller: Caller, permissions: UInt32?, uid: UInt32?, gid: UInt32?) throws(Errno) -> Ownership {
        machine.ownership = try machine.ownership.changed(by: caller, permissions: permissions, uid: uid, gid: gid)
        return machine.ownership
    }

    /// One transition, with bytes lent copied: the caller's, and replies for waits.
    private mutating func run<Result>(at now: Timestamp, _ body: (inout PipeMachine<Buffer>, inout Transition, CopyingLender) -> Result)
        -> (Result, SharedEffects, [UInt8]?) {
        var step = Transition(at: now)
        let lender = CopyingLender()
        let result = body(&machine, &step, lender)
        return (result, SharedEffects(step, lent: lender.waits), lender.caller)
    }
}

extension SharedMachine where Buffer == PagedBuffer {
    /// What the step did to the pages: bytes appended from stream position `start` on, and
    /// the first page still holding a buffered byte (those below it can go).
    package var pageChanges: (start: UInt64, appended: [UInt8], firstLivePage: Int64) {
        (machine.ring.appendStart, machine.ring.appended, machine.ring.firstLivePage)
    }

    /// The stream positions of the oldest buffered byte and one past the newest.
    package var positions: (head: UInt64, tail: UInt64) { (machine.ring.head, machine.ring.tail) }

    /// Pages the next step will read, fetched ahead.
    package func preload(_ pages: [Int64: [UInt8]]) { machine.ring.preload(pages) }
}

/// What a withdrawn wait was waiting in (an open by its id).
package enum CancelledOpen: Sendable, Equatable { case open(OpenID), read, write }

/// What one step decided for others: replies to waits (bytes for reads copied into
/// them), in order, and whether readiness may have changed (pollers to tell).
package struct SharedEffects: Sendable {
    package var replies: [(wait: WaitID, reply: PipeReply)] = []
    package var readinessChanged = false
    /// What every host shows of the pipe changed (its owner or mode): the hosts with opens
    /// of it are told, not only those polling it.
    package var viewChanged = false

    package init() {}

    init(_ step: borrowing Transition, lent: [(WaitID, [UInt8])]) {
        replies = lent.map { ($0.0, .data($0.1)) } + step.replies
        readinessChanged = step.readinessChanged
    }

    package mutating func merge(_ other: SharedEffects) {
        replies += other.replies
        readinessChanged = readinessChanged || other.readinessChanged
        viewChanged = viewChanged || other.viewChanged
    }
}

/// Copies what a transition lends: bytes for the read being made, and for waiting reads.
private final class CopyingLender: Lender {
    var caller: [UInt8]?
    var waits: [(WaitID, [UInt8])] = []

    func lend(_ data: ReadData, to target: ReadTarget) {
        switch target {
        case .caller: caller = data.copied()
        case .wait(let id): waits.append((id, data.copied()))
        }
    }
}
