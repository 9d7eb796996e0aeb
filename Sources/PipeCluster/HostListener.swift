import Dispatch
import Glibc
import PipeCore
import Synchronization

/// This host's own connection: it holds the host's lease (a session advisory lock, which
/// PostgreSQL lets go the moment the connection does, so a dead daemon's lease ends at
/// once), listens on the host's channel, fetches the replies other hosts left in its
/// mailbox, and refreshes pipes other hosts changed. (The heartbeat is the watcher's:
/// `LeaseWatcher`.)
final class HostListener: @unchecked Sendable {
    private unowned let store: PostgresPipeStore
    /// Replaced when the server went away and came back; used on `queue` (and by `stop`
    /// once the loop has ended).
    private var connection: Connection
    private let queue = DispatchQueue(label: "npfs.cluster.listener")
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    init(store: PostgresPipeStore, connection: Connection) throws(ClusterError) {
        self.store = store
        self.connection = connection
        try take(connection)
    }

    /// Takes this host's lease on `connection`, records its backend (for a survivor to end,
    /// should this host be cut off) and listens on its channel. A host whose row is gone
    /// was taken for gone while it was away: it joins again under its id, and what it had
    /// open or waiting is fenced off (`store.rejoinedAfterRemoval`).
    private func take(_ connection: Connection) throws(ClusterError) {
        let me = SQLValue.int32(Int32(bitPattern: store.host))
        try connection.execute("SELECT pg_advisory_lock(hashtext($1), $2)", [.text(store.schema.leaseKey), me])
        let hosts = store.schema.table("hosts")
        let mine = try connection.execute("UPDATE \(hosts) SET heartbeat = now(), backend = pg_backend_pid() WHERE id = $1 RETURNING id", [me])
        if mine.count == 0 {
            try connection.execute("INSERT INTO \(hosts) (id, space, name, pid, backend) VALUES ($1, $2, $3, $4, pg_backend_pid())",
                                   [me, .text(store.settings.space), .text(store.settings.hostName), .int32(getpid())])
            store.rejoinedAfterRemoval()
        }
        try connection.execute("LISTEN \(store.schema.channel(of: store.host))")
    }

    /// The server went away: connects again with backoff until it is back (or the host
    /// stops), then takes the lease again and fetches what was left for this host.
    private func reconnect() {
        store.connection(lost: true)
        var pause = 0.1
        while !stopping.load(ordering: .relaxed) {
            if let fresh = try? Connection(store.settings.target, timeout: store.settings.timeout), (try? take(fresh)) != nil {
                fresh.patience = store.settings.timeout
                connection = fresh
                store.connection(lost: false)
                fetchMail()
                store.readNames(on: fresh)
                return
            }
            usleep(UInt32(pause * 1_000_000))
            // Back within a third of the timeout: after a restart or a failover, the others
            // give a host that long to come back.
            pause = min(pause * 2, 2, store.settings.timeout / 3)
        }
    }

    func start() {
        queue.async { self.loop() }
    }

    /// Stops the loop and leaves the cluster (the host's row goes, and its lease).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        _ = stopped.wait(timeout: .now() + 5)
        // Whatever this host still has open is closed, as if it had died.
        store.removeHost(store.host, on: connection)
        _ = try? connection.execute("SELECT pg_advisory_unlock_all()")
    }

    private func loop() {
        while !stopping.load(ordering: .relaxed) {
            if !connection.isOK {
                reconnect()
                continue
            }
            // Notifications that arrived while this connection ran a statement of its own
            // (the heartbeat, fetching mail) are already read from the socket into libpq:
            // take them first, or the poll below would wait for more data to come.
            handleNotifications()
            if connection.waitReadable(timeout: 0.2) {
                handleNotifications()
            }
        }
        stopped.signal()
    }

    private func handleNotifications() {
        guard let received = try? connection.notifications() else {
            if !connection.isOK { reconnect() }
            return
        }
        var mail = false, names = false
        var changed: [[UInt8]: [UInt8]?] = [:]
        for (_, payload) in received {
            if payload == "m" { mail = true }
            if payload == "n" { names = true }
            // "c" NAME ":" STATE, in hex; the state is left out when it would not fit.
            guard payload.hasPrefix("c") else { continue }
            let parts = payload.dropFirst().split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first.flatMap({ Hex.decode($0) }) else { continue }
            changed[name] = parts.count == 2 && !parts[1].isEmpty ? Hex.decode(parts[1]) : .some(nil)
        }
        if mail { fetchMail() }
        if names { store.readNames(on: connection) }
        for (name, state) in changed {
            if let state, let pipe = store.pipe(name) { pipe.refresh(state, readinessChanged: true) } else { refresh(name) }
        }
    }

    /// Takes the replies other hosts left for this one and answers their requests.
    private func fetchMail() {
        guard let rows = try? connection.execute("DELETE FROM \(store.schema.table("mailbox")) WHERE host = $1 RETURNING wait, reply",
                                                 [.int32(Int32(bitPattern: store.host))]) else { return }
        var replies: [(wait: WaitID, reply: PipeReply)] = []
        for row in 0..<rows.count {
            guard let wait = rows.integer(row, 0), let bytes = rows.bytes(row, 1), let reply = try? PipeReply(decoding: bytes) else { continue }
            replies.append((WaitID(host: store.hostID, number: UInt64(bitPattern: wait)), reply))
        }
        store.deliver(replies)
    }

    /// Reads a pipe another host changed, for this host's pollers and figures.
    private func refresh(_ name: [UInt8]) {
        guard let pipe = store.pipe(name),
              let rows = try? connection.execute("SELECT state FROM \(store.schema.table("pipes")) WHERE space = $1 AND name = $2",
                                                 [.text(store.settings.space), .bytes(name)]),
              let state = rows.bytes(0, 0) else { return }
        pipe.refresh(state, readinessChanged: true)
    }
}
