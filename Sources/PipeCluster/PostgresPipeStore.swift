import Glibc
import PipeCore
import Synchronization

/// The pipes of a cluster mount: shared by every mount of the same PostgreSQL database,
/// schema and space. Each pipe's machine lives in a row of `pipes` and every operation is
/// one transaction that locks it, runs the same `PipeMachine` (`SharedMachine`), writes it
/// back and leaves replies for other hosts' waiting requests in `mailbox`, notifying them;
/// this host's waiting requests are answered once the transaction commits.
///
/// This host takes part as a row of `hosts`, with a lease (a session advisory lock held by
/// its listening connection, see `HostListener`). No FUSE thread waits for PostgreSQL: every
/// request that needs it is answered later, from the cluster's own threads (`ClusterWorker`).
package final class PostgresPipeStore: PipeStore {
    package let settings: ClusterSettings
    let schema: Schema
    /// This mount's number in `hosts`: the host of its opens and waits.
    package let host: HostNumber
    var hostID: HostID { HostID(rawValue: host) }
    /// The server as connected ("host:port/database").
    package let server: String
    private let workers: [ClusterWorker]
    private let listener = Mutex<HostListener?>(nil)
    private let watcher = Mutex<LeaseWatcher?>(nil)
    /// The bytes of waiting writes while a machine is decoded (bounded by the pipes' rows).
    let budget = ByteBudget(limit: Int(Int32.max))
    private let attached = Mutex<[[UInt8]: SharedPipe]>([:])
    /// This host's requests waiting in some pipe, by their wait numbers.
    let waits = WaitTable()
    /// Which opens were made before the other hosts last took this one for gone.
    let fence = HostFence()
    private let outcomes = Mutex<(any OpenOutcomes)?>(nil)
    private let disconnected = Mutex<Timestamp?>(nil)
    /// The space's pipe names, as last read (`readdir` lists them).
    private let names = Mutex<[[UInt8]]>([])

    /// Connects, makes or checks the schema, and joins the cluster as a new host; one line
    /// naming the problem otherwise.
    /// Connections: `workerCount` for transactions, the listener's and the watcher's.
    package init(settings: ClusterSettings, workerCount: Int = 3) throws(ClusterError) {
        self.settings = settings
        schema = try Schema(settings.schema)
        let connection = try Connection(settings.target, timeout: settings.timeout)
        try schema.prepare(on: connection)
        connection.patience = settings.timeout
        let rows = try connection.execute("""
            INSERT INTO \(schema.table("hosts")) (id, space, name, pid) VALUES (nextval('\(schema.table("host_ids"))'), $1, $2, $3)
            RETURNING id
            """, [.text(settings.space), .text(settings.hostName), .int32(getpid())])
        guard let number = rows.integer(0, 0), let host = HostNumber(exactly: number) else {
            throw ClusterError("PostgreSQL gave this host no id")
        }
        self.host = host
        server = connection.server
        workers = (0..<max(1, workerCount)).map { ClusterWorker(index: $0, settings: settings) }
        let listening = try HostListener(store: self, connection: connection)
        readNames(on: connection)
        listener.withLock { $0 = listening }
        listening.start()
        let watching = LeaseWatcher(store: self)
        watcher.withLock { $0 = watching }
        watching.start()
    }

    /// Leaves the cluster: this host's row and its lease go (its opens are closed by then).
    package func leave() {
        watcher.withLock { $0 }?.stop()
        listener.withLock { $0 }?.stop()
    }

    // MARK: PipeStore

    package func attach(_ key: [UInt8], config: PipeConfig, ownership: Ownership) -> any PipeEndpoint {
        attached.withLock { attached in
            if let pipe = attached[key] { return pipe }
            let pipe = SharedPipe(key: key, store: self, config: config, ownership: ownership)
            attached[key] = pipe
            return pipe
        }
    }

    package func detach(_ key: [UInt8]) {
        attached.withLock { _ = $0.removeValue(forKey: key) }
    }

    package func list() -> [any PipeEndpoint] { attached.withLock { Array($0.values) } }

    package func waitingBytes(of uid: UInt32) -> (total: Int, user: Int) { (0, 0) }

    package func report(to outcomes: any OpenOutcomes) { self.outcomes.withLock { $0 = outcomes } }

    package var sharedNames: [[UInt8]] { names.withLock { $0 } }

    package var settingsWait: Bool { true }

    package var keepsPersistedPipes: Bool { true }
    /// `SharedPipe` schedules the pipe's own open_timeout once the open's step read it.
    package var timesOpens: Bool { true }

    package var clusterSummary: String? {
        var lines = ["server=\(server)", "space=\(settings.space)", "host=\(settings.hostName)", "id=\(host)",
                     "hosts=\(hostsSeen.load(ordering: .relaxed))"]
        if let since = disconnectedSince {
            lines.append("disconnected_since=\(since.seconds)")
        } else {
            lines.append("connected=1")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Hosts of the space, as the last heartbeat counted them.
    let hostsSeen = Atomic<Int>(1)

    /// A pipe this host removed (nobody used it any more) leaves the names at once.
    func forgetName(_ key: [UInt8]) { names.withLock { $0.removeAll { $0 == key } } }

    /// Reads the names of the space's pipes (at start, and when a host says they changed).
    func readNames(on connection: Connection) {
        guard let rows = try? connection.execute("SELECT name FROM \(schema.table("pipes")) WHERE space = $1", [.text(settings.space)])
        else { return }
        let read = (0..<rows.count).compactMap { rows.bytes($0, 0) }
        names.withLock { $0 = read }
    }

    // MARK: For the pipes and the listener

    /// The worker that runs `key`'s transactions.
    func worker(for key: [UInt8]) -> ClusterWorker {
        workers[Int(fnv1a(key) % UInt64(workers.count))]
    }

    func pipe(_ key: [UInt8]) -> SharedPipe? { attached.withLock { $0[key] } }

    /// Answers this host's requests (their pipe's transaction committed, or failed), each
    /// exactly once: one already answered is left alone. An open that failed is undone in
    /// the registry.
    func deliver(_ replies: [(wait: WaitID, reply: PipeReply)]) {
        for (wait, reply) in replies where wait.host == hostID {
            guard let entry = waits.take(wait.number) else { continue }
            if let handle = entry.open, case .failed = reply {
                fence.forget(handle)
                openFailed(handle)
            }
            entry.waiter.resume(reply)
        }
    }

    /// The other hosts took this one for gone (its row was missing when it came back):
    /// every open made so far is fenced (EIO until reopened), and every request waiting
    /// here is answered EIO at once, its wait withdrawn everywhere already.
    func rejoinedAfterRemoval() {
        fence.raise()
        deliver(waits.all.map { (WaitID(host: hostID, number: $0), PipeReply.failed(.ioError)) })
    }

    /// A host whose lease this host has just taken is removed if it is gone: the server has
    /// served the cluster longer than the cluster's timeout (since it started, or since a
    /// standby was promoted: `serving_since()`), so the lease ended with the host's own
    /// connection (its daemon died, or it was cut off and ended as silent). Otherwise the
    /// lease may have ended with a restart of the server, and the host gets the timeout to
    /// come back (its heartbeat is as old as the restart, and says nothing): the lease is
    /// let go.
    @discardableResult
    func removeIfGone(_ host: HostNumber, on connection: Connection) -> Bool {
        let rows = try? connection.execute("""
            SELECT \(schema.name).serving_since() < now() - make_interval(secs => $1)
            """, [.double(settings.timeout)])
        if rows?.bool(0, 0) == true {
            removeHost(host, on: connection)
            return true
        }
        letGoOfLease(of: host, on: connection)
        return false
    }

    /// Since when this host has had no connection to the server, if it has none now.
    package var disconnectedSince: Timestamp? { disconnected.withLock { $0 } }

    func connection(lost: Bool) {
        disconnected.withLock { since in
            if !lost { since = nil } else if since == nil { since = .now() }
        }
    }

    /// A host whose lease this host now holds (it died, or left) is removed: its waits
    /// withdrawn and its opens closed in every pipe, its mailbox and row deleted, in one
    /// transaction; then the lease is let go. Replies for this host's requests are delivered.
    func removeHost(_ dead: HostNumber, on connection: Connection) {
        var delivered: [(wait: WaitID, reply: PipeReply)] = []
        var states: [([UInt8], [UInt8], Bool)] = []
        do {
            try connection.execute("BEGIN")
            let pipes = try connection.execute("SELECT DISTINCT space, name FROM \(schema.table("opens")) WHERE host = $1",
                                               [.int32(Int32(bitPattern: dead))])
            for index in 0..<pipes.count {
                guard let space = pipes.text(index, 0), let name = pipes.bytes(index, 1),
                      let (effects, state) = try PipeRow(store: self, space: space, key: name).removeHost(HostID(rawValue: dead), on: connection)
                else { continue }
                delivered += effects.replies
                if space == settings.space { states.append((name, state, effects.readinessChanged)) }
            }
            try connection.execute("DELETE FROM \(schema.table("mailbox")) WHERE host = $1", [.int32(Int32(bitPattern: dead))])
            try connection.execute("DELETE FROM \(schema.table("hosts")) WHERE id = $1", [.int32(Int32(bitPattern: dead))])
            try connection.execute("COMMIT")
        } catch {
            _ = try? connection.execute("ROLLBACK")
            delivered = []
            states = []
        }
        letGoOfLease(of: dead, on: connection)
        deliver(delivered)
        for (name, state, changed) in states { pipe(name)?.refresh(state, readinessChanged: changed) }
    }

    /// Lets go of the lease of `host` that this host's `connection` took.
    private func letGoOfLease(of host: HostNumber, on connection: Connection) {
        _ = try? connection.execute("SELECT pg_advisory_unlock(hashtext($1), $2)", [.text(schema.leaseKey), .int32(Int32(bitPattern: host))])
    }

    func openCompleted(_ handle: PipeHandle, hangUpVersion: UInt64) {
        outcomes.withLock { $0 }?.openCompleted(handle, hangUpVersion: hangUpVersion)
    }

    func openFailed(_ handle: PipeHandle) { outcomes.withLock { $0 }?.openFailed(handle) }

    func client(of handle: PipeHandle) -> (ClientIdentity, Timestamp)? { outcomes.withLock { $0 }?.client(of: handle) }
}

/// This host's requests that wait in some pipe, by number: the `WaitID`s its machines hold.
final class WaitTable: Sendable {
    struct Entry {
        let waiter: any PipeWaiter
        /// The handle of a waiting open (its end is undone if it fails).
        let open: PipeHandle?
        /// Its step has begun (the server was reached): a withdrawal is a step too.
        var begun = false
    }

    private let state = Mutex<(next: UInt64, entries: [UInt64: Entry])>((1, [:]))

    func add(_ waiter: any PipeWaiter, open: PipeHandle? = nil) -> UInt64 {
        state.withLock { state in
            let number = state.next
            state.next += 1
            state.entries[number] = Entry(waiter: waiter, open: open)
            return number
        }
    }

    func take(_ number: UInt64) -> Entry? { state.withLock { $0.entries.removeValue(forKey: number) } }

    /// The numbers of every request waiting now.
    var all: [UInt64] { state.withLock { Array($0.entries.keys) } }

    func isWaiting(_ number: UInt64) -> Bool { state.withLock { $0.entries[number] != nil } }

    /// The request's step begins; false if it was answered meanwhile (withdrawn while its
    /// worker waited for the server), and then it must not.
    func begin(_ number: UInt64) -> Bool {
        state.withLock { state in
            guard state.entries[number] != nil else { return false }
            state.entries[number]?.begun = true
            return true
        }
    }

    /// Takes a request whose step has not begun (it waits for the server to come back):
    /// it can be answered at once, nothing of it being anywhere else.
    func takeUnbegun(_ waiter: any PipeWaiter) -> Entry? {
        state.withLock { state in
            guard let (number, entry) = state.entries.first(where: { $0.value.waiter === waiter }), !entry.begun else { return nil }
            state.entries[number] = nil
            return entry
        }
    }

    func number(of waiter: any PipeWaiter) -> UInt64? {
        state.withLock { $0.entries.first { $0.value.waiter === waiter }?.key }
    }
}
