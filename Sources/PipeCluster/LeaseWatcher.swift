import Dispatch
import PipeCore
import Synchronization

/// Notices at once when a host of this space dies: on a connection of its own it waits for
/// the lease of the next host (by id, round the ring), which PostgreSQL grants the moment
/// that host's connection is gone; it then closes the dead host's opens (`removeHost`) and
/// watches the next one. Every host is watched by the one before it; the listener's
/// once-a-second look catches whatever this misses (a host that joined in between, or two
/// that died together).
final class LeaseWatcher: @unchecked Sendable {
    private unowned let store: PostgresPipeStore
    private let queue = DispatchQueue(label: "npfs.cluster.watcher")
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    /// The watcher's connection, to cancel a wait when stopping.
    private let current = Mutex<Connection?>(nil)
    /// How long one wait for a lease lasts before the watcher looks again for a new next
    /// host (stopping cancels the wait): an idle mount's queries stay near one a second.
    private let patience = 30

    init(store: PostgresPipeStore) {
        self.store = store
    }

    func start() { queue.async { self.loop() } }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        current.withLock { $0 }?.cancelRunningStatement()
        _ = stopped.wait(timeout: .now() + .seconds(patience + 2))
    }

    private func loop() {
        defer { stopped.signal() }
        var connection: Connection?
        while !stopping.load(ordering: .relaxed) {
            do {
                let live: Connection
                if let connection, connection.isOK { live = connection } else {
                    live = try Connection(store.settings.target, timeout: store.settings.timeout)
                    try live.execute("SET lock_timeout = '\(patience)s'")
                    connection = live
                    current.withLock { $0 = live }
                }
                guard let next = try nextHost(on: live) else {
                    // Alone in the space: look again now and then (the heartbeat's look
                    // covers a host that joins and dies in between).
                    pause(10)
                    continue
                }
                do {
                    try live.execute("SELECT pg_advisory_lock(hashtext($1), $2)", [.text(store.schema.leaseKey), .int32(Int32(bitPattern: next))])
                } catch where error.sqlState == "55P03" || error.sqlState == "57014" {
                    continue   // still alive (or stopping): look again
                }
                // A host whose lease ended with a restart of the server is given time to come back.
                if !store.removeIfGone(next, on: live) { pause(0.5) }
            } catch {
                connection = nil
                pause(0.5)
            }
        }
    }

    /// Sleeps up to `seconds`, waking early to stop.
    private func pause(_ seconds: Double) {
        let end = Timestamp.monotonicSeconds() + seconds
        while !stopping.load(ordering: .relaxed) && Timestamp.monotonicSeconds() < end { usleep(100_000) }
    }

    /// The host after this one in the space, by id, round the ring.
    private func nextHost(on connection: Connection) throws(ClusterError) -> HostNumber? {
        let rows = try connection.execute("""
            SELECT id FROM \(store.schema.table("hosts")) WHERE space = $1 AND id <> $2
            ORDER BY id <= $2, id LIMIT 1
            """, [.text(store.settings.space), .int32(Int32(bitPattern: store.host))])
        return rows.integer(0, 0).flatMap(HostNumber.init(exactly:))
    }
}

import Glibc
