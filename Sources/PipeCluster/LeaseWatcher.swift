import Dispatch
import PipeCore
import Synchronization

/// A host's heartbeat, and its watch on the others: on a connection of its own, once a
/// second (three times within `cluster_timeout` if that is shorter), one statement
/// (`Schema.beat`) sets this host's heartbeat, ends the backends of hosts silent for
/// longer than the timeout, counts the space's hosts, takes the free leases of hosts that
/// died unnoticed, and then waits for the rest of the second for the lease of the next
/// host (by id, round the ring), which PostgreSQL grants the moment that host's
/// connection is gone. A host whose lease it took is removed (`removeIfGone`: its opens
/// closed, its waits withdrawn). Every host is watched by the one before it, so a dead
/// daemon's opens close within milliseconds; the free leases catch the rest (a host that
/// joined in between, or two that died together) within a second.
///
/// The wait is cut into statements of at most a second because a running statement holds
/// back what VACUUM may remove, in every table of the database: a wait that lasted would
/// let the rows of pipes' steps pile up, and every step slow down.
final class LeaseWatcher: @unchecked Sendable {
    private unowned let store: PostgresPipeStore
    private let queue = DispatchQueue(label: "npfs.cluster.watcher")
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    /// The watcher's connection, to cancel a wait when stopping.
    private let current = Mutex<Connection?>(nil)
    /// How long one beat lasts: at least three beats within the timeout, so that a live
    /// host never looks silent.
    private var patience: Double { min(1, store.settings.timeout / 3) }

    init(store: PostgresPipeStore) {
        self.store = store
    }

    func start() { queue.async { self.loop() } }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        current.withLock { $0 }?.cancelRunningStatement()
        _ = stopped.wait(timeout: .now() + .seconds(Int(patience) + 2))
    }

    private func loop() {
        defer { stopped.signal() }
        var connection: Connection?
        while !stopping.load(ordering: .relaxed) {
            let started = Timestamp.monotonicSeconds()
            do {
                let live: Connection
                if let connection, connection.isOK { live = connection } else {
                    live = try Connection(store.settings.target, timeout: store.settings.timeout)
                    live.patience = store.settings.timeout + patience
                    // Should this daemon die mid-wait, its backend stops waiting soon after
                    // (PostgreSQL 14 and later; older servers refuse it and wait out the beat).
                    _ = try? live.execute("SET client_connection_check_interval = 100")
                    connection = live
                    current.withLock { $0 = live }
                }
                let rows = try live.execute("SELECT hosts, free, next, next_gone FROM \(store.schema.table("beat"))($1, $2, $3, $4, $5)", [
                    .text(store.settings.space), .int32(Int32(bitPattern: store.host)), .text(store.schema.leaseKey),
                    .double(store.settings.timeout), .double(patience),
                ])
                if let seen = rows.integer(0, 0) { store.hostsSeen.store(Int(seen), ordering: .relaxed) }
                for id in (rows.text(0, 1) ?? "").split(separator: ",").compactMap({ HostNumber($0) }) {
                    store.removeIfGone(id, on: live)
                }
                if rows.bool(0, 3) == true, let next = rows.integer(0, 2).flatMap(HostNumber.init(exactly:)),
                   !store.removeIfGone(next, on: live) {
                    // Its lease ended with a restart of the server: it is given time to come back.
                    pause(0.5)
                }
            } catch {
                connection = nil
            }
            // A beat that did not wait (no other host, or one whose lease was free) still
            // lasts its time.
            pause(patience - (Timestamp.monotonicSeconds() - started))
        }
    }

    /// Sleeps up to `seconds`, waking early to stop.
    private func pause(_ seconds: Double) {
        let end = Timestamp.monotonicSeconds() + seconds
        while !stopping.load(ordering: .relaxed) && Timestamp.monotonicSeconds() < end { usleep(20_000) }
    }
}

import Glibc
