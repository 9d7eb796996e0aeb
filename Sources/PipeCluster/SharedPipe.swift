import PipeCore
import Synchronization
import SystemPackage

/// One pipe of a cluster mount, as this host sees it: every operation is a transaction on
/// the pipe's row, run by its worker, and answered after the commit. Polls read the row's
/// state; figures and settings read it as this host last saw it (after its own
/// transactions and the other hosts' change notifications).
final class SharedPipe: PipeEndpoint {
    let key: [UInt8]
    unowned let store: PostgresPipeStore
    /// The settings and owner the pipe is made with if no host has it yet.
    private let config: PipeConfig
    private let creator: Ownership

    struct Seen: ~Copyable {
        var machine: ClusterMachine?
        var pollers: [PipeHandle: any PollNotifier] = [:]
        /// Opens marked as polled in the `opens` table (see `PipeRow.markingPolled`).
        var polled: Set<PipeHandle> = []
    }

    private let seen = Mutex(Seen())

    init(key: [UInt8], store: PostgresPipeStore, config: PipeConfig, ownership: Ownership) {
        self.key = key
        self.store = store
        self.config = config
        creator = ownership
    }

    private var me: HostID { store.hostID }
    private var row: PipeRow { PipeRow(store: store, space: store.settings.space, key: key) }

    // MARK: Opening and closing

    func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, caller: Caller, protection: PipeProtection,
              mountOwner: UInt32, waiter: any PipeWaiter) -> OpenAnswer {
        let wait = WaitID(host: me, number: store.waits.add(waiter, open: handle))
        let open = OpenID(host: me, handle: handle)
        store.fence.opened(handle)
        run(for: wait.number) { pipe, now, statements in
            let offer = WaitOffer(wait, interrupted: waiter.isInterrupted)
            var (answer, effects) = pipe.machine.open(open, access: access, nonblocking: nonblocking, caller: caller, protection: protection,
                                                 mountOwner: mountOwner, wait: offer, at: now)
            if case .needsGroups(let group) = answer {
                // The caller's groups decide: read them (this is no FUSE thread) and decide again.
                (answer, effects) = pipe.machine.open(open, access: access, nonblocking: nonblocking, caller: caller.readingGroups(for: group),
                                                 protection: protection, mountOwner: mountOwner, wait: offer, at: now)
            }
            var hangUpVersion: UInt64 = 0, timeout = 0.0
            switch answer {
            case .result(.done(let reply), let version):
                effects.replies.append((wait, PipeReply(reply)))
                if case .opened = reply {
                    statements.append(self.row.recordingOpen(of: self.me, handle, access: access))
                    hangUpVersion = version
                }
            case .result(.queued, _):
                statements.append(self.row.recordingOpen(of: self.me, handle, access: access))
                timeout = pipe.machine.status.config.openTimeout
            case .needsGroups:   // never after the groups were read
                break
            }
            return (effects, {
                // The POLLHUP mark reaches the registry before the open's reply.
                if hangUpVersion != 0 { self.store.openCompleted(handle, hangUpVersion: hangUpVersion) }
                // The pipe's open_timeout, as set on any host: the adapter knew only this
                // mount's default when the open came (nothing happens if it was answered).
                if timeout > 0 {
                    DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { self.cancel(waiter, because: .timedOut) }
                }
            })
        } failed: {
            self.store.deliver([(wait, .failed(.ioError))])
        }
        return .result(.queued, hangUpVersion: 0)
    }

    func close(_ handle: PipeHandle, access: AccessMode) {
        seen.withLock { seen in
            seen.pollers[handle] = nil
            seen.polled.remove(handle)
        }
        // An open from before this host was taken for gone was closed by the others.
        if store.fence.forget(handle) { return }
        run(readingOpens: true) { pipe, now, statements in
            // Closed once: an open this host's removal closed already is not closed again.
            guard pipe.opens[handle] != nil else { return (SharedEffects(), {}) }
            statements.append(self.row.forgettingOpen(of: self.me, handle))
            return (pipe.machine.close(OpenID(host: self.me, handle: handle), access: access, at: now), {})
        } failed: {}
    }

    func cancel(_ waiter: any PipeWaiter, because reason: Withdrawal, beforeAnswering: (CancelledWait) -> Void) {
        if let entry = store.waits.takeUnbegun(waiter) {
            // Its step waits for the server: answered now, and the step will not run.
            if let handle = entry.open {
                store.fence.forget(handle)
                store.openFailed(handle)
            }
            waiter.resume(.failed(reason == .timedOut ? .timedOut : .interrupted))
            return
        }
        guard let number = store.waits.number(of: waiter) else { return }
        run { pipe, now, statements in
            let (cancelled, effects) = pipe.machine.cancel(WaitID(host: self.me, number: number), because: reason, at: now)
            if case .open(let open) = cancelled { statements.append(self.row.forgettingOpen(of: self.me, open.handle)) }
            return (effects, {})
        } failed: {}
        // Answered (EINTR, ETIMEDOUT) once the withdrawal commits, unless a reply came first.
    }

    func stop(waitingOnly: Bool) -> [PipeHandle] { [] }

    // MARK: Data

    func read(_ handle: PipeHandle, size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
              sink: ReadSink?) -> ReadResult {
        if store.fence.isFenced(handle) { return .done(.failed(.ioError)) }
        guard let waiter else { return .mustWait }
        let wait = WaitID(host: me, number: store.waits.add(waiter))
        run(prefetch: size, for: wait.number) { pipe, now, _ in
            var (reply, _, effects) = pipe.machine.read(OpenID(host: self.me, handle: handle), size: size, offset: offset,
                                                  nonblocking: nonblocking, wait: WaitOffer(wait, interrupted: waiter.isInterrupted), at: now)
            if let reply { effects.replies.append((wait, PipeReply(reply))) }
            return (effects, {})
        } failed: {
            self.store.deliver([(wait, .failed(.ioError))])
        }
        return .queued
    }

    func write(_ handle: PipeHandle, bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool,
               waiter: (any PipeWaiter)?, uid: UInt32) -> WriteResult {
        if store.fence.isFenced(handle) { return .done(.failed(.ioError)) }
        guard let waiter else { return .mustWait }
        let wait = WaitID(host: me, number: store.waits.add(waiter))
        let copy = [UInt8](bytes)
        run(for: wait.number) { pipe, now, _ in
            var (attempt, effects) = pipe.machine.write(OpenID(host: self.me, handle: handle), copy, offset: offset,
                                                   nonblocking: nonblocking, wait: WaitOffer(wait, interrupted: waiter.isInterrupted), at: now)
            if case .done(let reply) = attempt { effects.replies.append((wait, PipeReply(reply))) }
            return (effects, {})
        } failed: {
            self.store.deliver([(wait, .failed(.ioError))])
        }
        return .queued
    }

    /// Readiness as PostgreSQL has it when the poll is served: after this host's earlier
    /// steps on the pipe and every other host's that returned (a change notification may
    /// still be on its way). As last seen if the server cannot be reached.
    func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64, notifier: (any PollNotifier)?,
              replier: (any PollReplier)?) -> PollResult {
        if store.fence.isFenced(handle) { return .events([.error]) }
        guard let replier else { return .mustAsk }
        // The first poll that asks to be told marks the open, so that the other hosts tell this one.
        let marking = notifier.map { notifier in
            seen.withLock { seen in
                seen.pollers[handle] = notifier
                return seen.polled.insert(handle).inserted
            }
        } ?? false
        store.worker(for: key).async { worker in
            try? self.reload(on: worker, markingPolled: marking ? handle : nil)
            let events = self.seen.withLock { seen -> PollEvents in
                switch seen.machine {
                case .some(let machine): machine.readiness(OpenID(host: self.me, handle: handle), access: access, hangUpVersion: hangUpVersion)
                case .none: []
                }
            }
            replier.reply(events)
        }
        return .queued
    }

    // MARK: Settings and figures (as last seen)

    func apply(_ setting: PipeSetting) throws(Errno) {
        try decide { pipe, now in pipe.machine.apply(setting, at: now) }
    }

    var ownership: Ownership { seen.withLock { $0.machine?.ownership } ?? creator }

    func unpersist(by caller: Caller) throws(Errno) {
        try decide { pipe, _ in (pipe.machine.unpersist(by: caller), SharedEffects()) }
    }

    func changeOwnership(by caller: Caller, permissions: UInt32?, uid: UInt32?, gid: UInt32?) throws(Errno) -> Ownership {
        let result: Result<Ownership, Errno> = runAndWait { pipe, _ in
            do throws(Errno) {
                // The other hosts with opens are told (they read the new owner and mode).
                var told = SharedEffects()
                told.viewChanged = true
                return (.success(try pipe.machine.changeOwnership(by: caller, permissions: permissions, uid: uid, gid: gid)), told)
            } catch {
                return (.failure(error), SharedEffects())
            }
        } ?? .failure(.ioError)
        return try result.get()
    }

    var status: PipeStatus {
        seen.withLock { seen in
            switch seen.machine {
            case .some(let machine): return machine.status
            case .none:
                return ClusterMachine(config: config, ownership: creator, at: .now(), budget: store.budget).status
            }
        }
    }

    /// Reads the pipe's pages, in a transaction of its own (waited for, as settings are).
    func peek(_ max: Int, reader: PipeHandle?) -> [UInt8] {
        let me = self.me
        return runAndWait { pipe, _ in (pipe.machine.peek(max, reader: reader.map { OpenID(host: me, handle: $0) }), SharedEffects()) } ?? []
    }

    var openFigures: (waiting: [PipeHandle: PipeClient.Waiting], lost: [PipeHandle: UInt64]) {
        seen.withLock { seen in
            switch seen.machine {
            case .some(let machine):
                let me = self.me
                let waiting = machine.waitingOpens.filter { $0.key.host == me }
                let lost = machine.losses.filter { $0.key.host == me }
                return (Dictionary(uniqueKeysWithValues: waiting.map { ($0.key.handle, $0.value) }),
                        Dictionary(uniqueKeysWithValues: lost.map { ($0.key.handle, $0.value) }))
            case .none:
                return ([:], [:])
            }
        }
    }

    func trimBuffers() {}

    func load() throws(Errno) {
        let outcome = store.worker(for: key).sync { worker -> Result<Void, Errno> in
            do throws(Errno) { return .success(try self.reload(on: worker)) } catch { return .failure(error) }
        }
        try (outcome ?? .failure(.ioError)).get()
    }

    func holdsExactly(readers: Set<PipeHandle>, writers: Int) -> Bool {
        seen.withLock { seen in
            switch seen.machine {
            case .some(let machine): return machine.readerOpens(of: me) == Set(readers.map { OpenID(host: me, handle: $0) })
            case .none: return readers.isEmpty
            }
        }
    }

    // MARK: Transactions

    /// What a transaction's body gives back: the machine's effects (a reply to the request
    /// being made among them, as to any wait of this host's), and what else to do once it
    /// has committed, before the replies are delivered.
    typealias Step = (SharedEffects, () -> Void)

    /// Runs `body` on the pipe's machine in a transaction on the pipe's worker, in two round
    /// trips: the row locked and read (made if missing), with this host's opens of it if
    /// `readingOpens` (a close checks its open is still there); then
    /// the machine written back (or the row removed once nobody uses the pipe), with the
    /// statements `body` added, replies for other hosts left in their mailboxes and the
    /// hosts notified, and the commit. After the commit, this host's replies are delivered,
    /// its view of the pipe refreshed and its pollers told. `failed` runs if PostgreSQL could
    /// not be reached or refused.
    func run(prefetch: Int = 0, readingOpens: Bool = false, for request: UInt64? = nil,
             _ body: @escaping @Sendable (inout PipeRow.Locked, Timestamp, inout [Statement]) -> Step,
             failed: @escaping @Sendable () -> Void) {
        store.worker(for: key).async { worker in
            do {
                // While the server is away the request may be withdrawn (Ctrl-C, a timeout):
                // it then is answered at once, and its step never runs.
                if let request, !self.store.waits.isWaiting(request) { return }
                _ = try worker.connected()
                if let request, !self.store.waits.begin(request) { return }
                let row = self.row
                let (state, effects, after) = try worker.transaction { connection throws(ClusterError) in
                    let begun: PipeRow.Locked?
                    do throws(ClusterError) {
                        begun = try row.lock(on: connection, opensOf: readingOpens ? self.me : nil, prefetch: prefetch, begin: true,
                                             creating: (self.config, self.creator))
                    } catch {
                        // Nothing is committed before the step: a lost connection is tried again.
                        var failure = error
                        failure.retryable = !connection.isOK
                        throw failure
                    }
                    guard var pipe = begun else { throw ClusterError("a pipe's row went missing") }
                    var statements: [Statement] = []
                    let (effects, after) = body(&pipe, .now(), &statements)
                    let (state, unused) = (pipe.machine.encoded, pipe.machine.isUnused)
                    _ = try connection.pipeline(statements + row.saving(pipe.machine, effects: effects, firstLivePage: pipe.firstLivePage) + [Statement("COMMIT")])
                    return (state, effects, { if unused { self.store.forgetName(self.key) }; after() })
                }
                after()
                self.store.deliver(effects.replies)
                self.refresh(state, readinessChanged: effects.readinessChanged)
            } catch {
                failed()
            }
        }
    }

    /// The same, waited for (settings and ownership, which FUSE answers at once): nil if
    /// PostgreSQL could not be reached within the cluster's timeout.
    private func runAndWait<T: Sendable>(_ body: @escaping @Sendable (inout PipeRow.Locked, Timestamp) -> (T, SharedEffects)) -> T? {
        let result = Mutex<T?>(nil)
        run { pipe, now, _ in
            let (value, effects) = body(&pipe, now)
            result.withLock { $0 = value }
            return (effects, {})
        } failed: {}
        _ = store.worker(for: key).sync { _ in true }   // the step above has run by then
        return result.withLock { $0 }
    }

    /// A change that succeeds or fails with an errno, waited for; EIO if PostgreSQL could
    /// not be reached within the cluster's timeout.
    private func decide(_ body: @escaping @Sendable (inout PipeRow.Locked, Timestamp) -> (Errno?, SharedEffects)) throws(Errno) {
        switch runAndWait(body) {
        case .none: throw .ioError
        case .some(.some(let error)): throw error
        case .some(.none): return
        }
    }

    /// Reads the row's committed state on the pipe's worker (so after this host's earlier
    /// steps on it) and takes it as this host's view, marking an open as polled first if
    /// asked: ENOENT if the row is gone, EIO if the server could not be reached.
    private func reload(on worker: ClusterWorker, markingPolled handle: PipeHandle? = nil) throws(Errno) {
        let state: [UInt8]?
        do throws(ClusterError) {
            if let handle {
                let row = self.row
                state = try worker.transaction { connection throws(ClusterError) in try row.markingPolled(handle, on: connection) }
            } else {
                state = try row.state(on: worker.connected())
            }
        } catch {
            if let handle { seen.withLock { _ = $0.polled.remove(handle) } }   // the next poll tries again
            throw .ioError
        }
        guard let state else { throw .noSuchFileOrDirectory }
        refresh(state, readinessChanged: false)
    }

    /// This host's view of the pipe is now `state`; pollers are told if readiness may have changed.
    func refresh(_ state: [UInt8], readinessChanged: Bool) {
        let budget = store.budget
        let pollers = seen.withLock { seen -> [any PollNotifier] in
            seen.machine = try? ClusterMachine(decoding: state, budget: budget)
            guard readinessChanged else { return [] }
            defer { seen.pollers.removeAll() }
            return Array(seen.pollers.values)
        }
        for poller in pollers { poller.notify() }
    }
}

import Dispatch
