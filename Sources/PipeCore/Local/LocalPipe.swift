import Synchronization
import SystemPackage

/// One live named pipe: the seed driver's resource context, and the local executor of
/// its `PipeMachine`.
///
/// Attached by the first open of a name and detached by the registry after the last
/// release (`LocalPipeStore`). Every operation runs one transition of the machine under `state`'s lock, with the
/// requests that wait (`WaiterSlots`) and the pollers it names, and performs the replies
/// and notifications it decided (`Deliveries`) after the lock is released; bytes read are
/// sent from the machine's buffer during the transition, uncopied.
///
/// The registry never calls it with its own lock held.
package final class LocalPipe: PipeEndpoint {
    typealias Machine = PipeMachine<ByteRing>

    struct Locked: ~Copyable {
        var machine: Machine
        /// At most one pending poll notification per open.
        var pollers: [PipeHandle: any PollNotifier] = [:]
    }

    let state: Mutex<Locked>
    /// The requests waiting in the machine, by the ids it knows them by.
    let waiters = WaiterSlots()
    /// The mount's budget for the bytes of waiting writes.
    private let budget: ByteBudget

    init(config: PipeConfig, ownership: Ownership, budget: ByteBudget) {
        state = Mutex(Locked(machine: Machine(config: config, ownership: ownership, at: .now())))
        self.budget = budget
    }

    package var status: PipeStatus { state.withLock { $0.machine.status } }

    package var ownership: Ownership { state.withLock { $0.machine.ownership } }

    /// chmod and chown: changes the owner, group or permission bits as `caller` may
    /// (see `Ownership.changed`); EPERM otherwise. Returns the new ownership.
    package func unpersist(by caller: Caller) throws(Errno) {
        if let error = state.withLock({ $0.machine.unpersist(by: caller) }) { throw error }
    }

    package func changeOwnership(by caller: Caller, permissions: UInt32?, uid: UInt32?, gid: UInt32?) throws(Errno) -> Ownership {
        try state.withLock { (state: inout Locked) throws(Errno) -> Ownership in
            state.machine.ownership = try state.machine.ownership.changed(by: caller, permissions: permissions, uid: uid, gid: gid)
            return state.machine.ownership
        }
    }

    /// Frees buffer memory that stayed unused since the previous call (see `ByteRing.trim`).
    package func trimBuffers() { state.withLock { $0.machine.trim() } }

    /// What each open of the pipe waits for now, and (broadcast) what each reader lost.
    package var openFigures: (waiting: [PipeHandle: PipeClient.Waiting], lost: [PipeHandle: UInt64]) {
        state.withLock { state in
            let waiting = state.machine.waitingOpens
            let lost = state.machine.delivery.inspectBroadcast { $0.cursors.losses(base: $0.base) } ?? [:]
            return (Dictionary(uniqueKeysWithValues: waiting.map { ($0.key.handle, $0.value) }),
                    Dictionary(uniqueKeysWithValues: lost.map { ($0.key.handle, $0.value) }))
        }
    }

    /// What a read of up to `max` bytes by `reader` would return, without consuming it
    /// (`user.npfs.peek`; see `PipeMachine.peek`).
    package func peek(_ max: Int, reader: PipeHandle?) -> [UInt8] {
        state.withLock { $0.machine.peek(max, reader: reader.map { OpenID(handle: $0) }) }
    }

    /// For tests: the invariants of the buffer, the message queue and the counters, a
    /// waiting request for every wait the machine holds, and exactly these ends.
    package func holdsExactly(readers: Set<PipeHandle>, writers: Int) -> Bool {
        state.withLock { state in
            state.machine.isConsistent && waiters.holdsExactly(state.machine.waitIDs)
                && state.machine.readerOpens == Set(readers.map { OpenID(handle: $0) }) && state.machine.readers == readers.count
                && state.machine.writers == writers
        }
    }

    /// Changes a setting at once and wakes whoever that concerns. Throws EINVAL for a
    /// capacity out of range, EBUSY for a capacity below what is buffered or a waiting
    /// message, or a framing or delivery change while bytes are buffered or writers wait.
    package func apply(_ setting: PipeSetting) throws(Errno) {
        if let error = step({ machine, step, lend in machine.apply(setting, &step, lend: lend) }) { throw error }
    }

    // MARK: Opening and closing

    package func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, caller: Caller, protection: PipeProtection,
                     mountOwner: UInt32, waiter: any PipeWaiter) -> OpenAnswer {
        var deliveries = Deliveries()
        let answer = state.withLock { state -> OpenAnswer in
            let ownership = state.machine.ownership
            let permitted = caller.answer(about: ownership.gid) { caller in
                ownership.permits(caller, access) && !protection.refuses(caller, access, of: ownership, mountOwner: mountOwner)
            }
            guard let permitted else { return .needsGroups(ownership.gid) }
            guard permitted else { return .result(.done(.failed(.permissionDenied)), hangUpVersion: 0) }
            var step = Transition(at: .now())
            let offer = WaitOffer(waiters.insert(waiter), interrupted: waiter.isInterrupted)
            let (attempt, hangUpVersion) = state.machine.open(OpenID(handle: handle), access: access, nonblocking: nonblocking,
                                                              wait: offer, &step)
            if !attempt.isQueued { waiters.remove(offer.id) }
            state.perform(step, waiters: waiters, into: &deliveries)
            return .result(attempt, hangUpVersion: hangUpVersion)
        }
        deliveries.deliver()
        return answer
    }

    package func close(_ handle: PipeHandle, access: AccessMode) {
        step(forgetting: handle) { machine, step, lend in machine.close(OpenID(handle: handle), access: access, &step, lend: lend) }
    }

    package func cancel(_ waiter: any PipeWaiter, because reason: Withdrawal, beforeAnswering: (CancelledWait) -> Void) {
        _ = step(beforeDelivering: { if let cancelled = $0 { beforeAnswering(cancelled) } }) { machine, step, lend -> CancelledWait? in
            guard let id = waiters.id(of: waiter) else { return nil }
            switch machine.cancel(id, because: reason, &step, lend: lend) {
            case .open(let open): return .open(open.handle)
            case .read: return .read
            case .write: return .write
            case nil: return nil
            }
        }
    }

    package func stop(waitingOnly: Bool) -> [PipeHandle] {
        step { machine, step, lend in
            (waitingOnly ? machine.failWaitingOpens(&step, lend: lend) : machine.closeForShutdown(&step, lend: lend)).map(\.handle)
        }
    }

    // MARK: Data

    package func read(_ handle: PipeHandle, size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
                     sink: ReadSink?) -> ReadResult {
        var deliveries = Deliveries()
        let attempt = state.withLock { state in
            var step = Transition(at: .now())
            let offer = offer(waiter)
            let lend = LocalLender(waiters: waiters, sink: sink, waiter: sink == nil ? waiter : nil)
            let attempt = state.machine.read(OpenID(handle: handle), size: size, offset: offset, nonblocking: nonblocking,
                                             wait: offer, &step, lend: lend)
            if let offer, !attempt.isQueued { waiters.remove(offer.id) }
            state.perform(step, waiters: waiters, into: &deliveries)
            return attempt
        }
        deliveries.deliver()
        return attempt
    }

    /// A write; one that waits keeps a copy of the bytes not yet taken, charged to `uid`'s
    /// share of the mount's budget for waiting writes (ENOBUFS beyond it).
    package func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool,
                      waiter: (any PipeWaiter)?, uid: UInt32) -> WriteResult {
        let borrowed = BorrowedBytes(bytes)
        var deliveries = Deliveries()
        let attempt = state.withLock { state in
            var step = Transition(at: .now())
            let offer = offer(waiter)
            let open = OpenID(handle: handle)
            var attempt: WriteResult
            let lend = LocalLender(waiters: waiters)
            switch state.machine.write(open, borrowed.bytes, offset: offset, nonblocking: nonblocking, wait: offer, &step, lend: lend) {
            case .attempt(let decided):
                attempt = decided
            case .mustKeep(let taken, let atomic):
                guard let offer else {
                    attempt = .mustWait   // never: only a write offered a wait must keep its bytes
                    break
                }
                let kept = WaitingBytes(copying: UnsafeRawBufferPointer(rebasing: borrowed.bytes[taken...]), budget: budget, uid: uid)
                attempt = state.machine.queueWrite(offer.id, open: open, kept: kept, taken: taken, atomic: atomic, &step, lend: lend)
            }
            if let offer, !attempt.isQueued { waiters.remove(offer.id) }
            state.perform(step, waiters: waiters, into: &deliveries)
            return attempt
        }
        deliveries.deliver()
        return attempt
    }

    /// The open's readiness now; a notifier, if given, is told of the next change (it
    /// replaces the open's earlier one).
    package func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64, notifier: (any PollNotifier)?,
                      replier: (any PollReplier)?) -> PollResult {
        state.withLock { state in
            if let notifier { state.pollers[handle] = notifier }
            return .events(state.machine.readiness(OpenID(handle: handle), access: access, hangUpVersion: hangUpVersion))
        }
    }

    // MARK: Running a transition

    /// Runs one transition under the lock: bytes lent to waiting reads go straight to their
    /// requests, and the replies and notifications it decided are delivered once it is released.
    @inline(__always)
    private func step<Result>(forgetting poller: PipeHandle? = nil, beforeDelivering: (Result) -> Void = { _ in },
                              _ body: (inout Machine, inout Transition, LocalLender) -> Result) -> Result {
        var deliveries = Deliveries()
        let result = state.withLock { state in
            if let poller { state.pollers[poller] = nil }
            var step = Transition(at: .now())
            let result = body(&state.machine, &step, LocalLender(waiters: waiters))
            state.perform(step, waiters: waiters, into: &deliveries)
            return result
        }
        beforeDelivering(result)
        deliveries.deliver()
        return result
    }

    /// A request offered to the machine as a wait: kept by an id until the machine either
    /// queues it or not (then the caller removes it). Its interrupt is read under the lock,
    /// as an interrupt's withdrawal takes it: one that comes before the request is queued
    /// is seen here, one after finds it queued.
    @inline(__always)
    private func offer(_ waiter: (any PipeWaiter)?) -> WaitOffer? {
        guard let waiter else { return nil }
        return WaitOffer(waiters.insert(waiter), interrupted: waiter.isInterrupted)
    }
}

extension LocalPipe.Locked {
    /// Hands a transition's replies to `deliveries` with the requests they answer, and the
    /// pollers to tell if readiness may have changed.
    @inline(__always)
    mutating func perform(_ step: borrowing Transition, waiters: WaiterSlots, into deliveries: inout Deliveries) {
        if !step.replies.isEmpty { performReplies(step, waiters: waiters, into: &deliveries) }
        if step.readinessChanged && !pollers.isEmpty {
            deliveries.notify(pollers.values)
            pollers.removeAll()
        }
    }

    private func performReplies(_ step: borrowing Transition, waiters: WaiterSlots, into deliveries: inout Deliveries) {
        for (wait, reply) in step.replies {
            guard let waiter = waiters.remove(wait) else {
                assertionFailure("a reply to an unknown wait")
                continue
            }
            deliveries.resume(waiter, with: reply)
        }
    }
}

/// Sends bytes a pipe's machine lends: to the request being made (through its sink, or
/// to the waiter it offered), or to a waiting read, which is then answered and forgotten.
struct LocalLender: Lender {
    /// Unowned: the pipe that owns them runs the transition.
    unowned(unsafe) let waiters: WaiterSlots
    var sink: ReadSink? = nil
    var waiter: (any PipeWaiter)? = nil

    func lend(_ data: ReadData, to target: ReadTarget) {
        switch target {
        case .caller:
            if let sink { sink(data) } else { waiter?.resume(reading: data) }
        case .wait(let id):
            guard let waiter = waiters.remove(id) else { return assertionFailure("bytes lent to an unknown wait") }
            waiter.resume(reading: data)
        }
    }
}

/// A write's payload, lent to the locked state for the duration of one call.
/// Unchecked: the state copies from it and never keeps the pointer.
private struct BorrowedBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}
