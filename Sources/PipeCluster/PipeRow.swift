import PipeCore

/// One pipe's rows in PostgreSQL, within a transaction: its machine in `pipes` (locked for
/// the transaction), its opens in `opens`, and what its steps tell other hosts.
struct PipeRow {
    let store: PostgresPipeStore
    let space: String
    let key: [UInt8]

    private var schema: Schema { store.schema }
    private var me: HostID { store.hostID }
    private var pipeKey: [SQLValue?] { [.text(space), .bytes(key)] }

    /// The machine, its row locked; made with `creating` (settings and owner) if missing, or
    /// nil if missing and nothing is to be made.
    func lock(on connection: Connection, creating: (PipeConfig, Ownership)?) throws(ClusterError) -> SharedMachine? {
        let pipes = schema.table("pipes")
        let select = "SELECT state FROM \(pipes) WHERE space = $1 AND name = $2 FOR UPDATE"
        var rows = try connection.execute(select, pipeKey)
        if rows.count == 0 {
            guard let (config, ownership) = creating else { return nil }
            let fresh = SharedMachine(config: config, ownership: ownership, at: .now(), budget: store.budget)
            try connection.execute("INSERT INTO \(pipes) (space, name, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                                   pipeKey + [.bytes(fresh.encoded)])
            rows = try connection.execute(select, pipeKey)
        }
        guard let bytes = rows.bytes(0, 0) else { throw ClusterError("a pipe's row went missing") }
        do {
            return try SharedMachine(decoding: bytes, budget: store.budget)
        } catch {
            throw ClusterError("a pipe's state in PostgreSQL is damaged: \(error.description)")
        }
    }

    /// The same, made if missing.
    func lock(on connection: Connection, creating: (PipeConfig, Ownership)) throws(ClusterError) -> SharedMachine {
        guard let machine = try lock(on: connection, creating: .some(creating)) else { throw ClusterError("a pipe's row went missing") }
        return machine
    }

    /// Writes the machine back, or removes the row once nobody uses the pipe (unless persisted).
    func save(_ state: [UInt8], unused: Bool, on connection: Connection) throws(ClusterError) {
        let pipes = schema.table("pipes")
        if unused {
            try connection.execute("DELETE FROM \(pipes) WHERE space = $1 AND name = $2 AND NOT persist", pipeKey)
        }
        try connection.execute("UPDATE \(pipes) SET state = $3, changed = now() WHERE space = $1 AND name = $2", pipeKey + [.bytes(state)])
    }

    /// Replies for other hosts' waits go to their mailboxes; they, and the hosts with opens
    /// of the pipe if its readiness changed, are notified (delivered at commit).
    func tellOthers(_ effects: SharedEffects, on connection: Connection) throws(ClusterError) {
        let mailbox = schema.table("mailbox")
        var told: Set<UInt32> = []
        for (wait, reply) in effects.replies where wait.host != me {
            try connection.execute("INSERT INTO \(mailbox) (host, wait, reply) VALUES ($1, $2, $3)",
                                   [.int32(Int32(bitPattern: wait.host.rawValue)), .int64(Int64(bitPattern: wait.number)), .bytes(reply.encoded)])
            told.insert(wait.host.rawValue)
        }
        for host in told {
            try connection.execute("SELECT pg_notify($1, 'm')", [.text(schema.channel(of: host))])
        }
        if effects.readinessChanged {
            try connection.execute("""
                SELECT pg_notify($4 || host::text, 'c' || encode($2, 'hex'))
                FROM (SELECT DISTINCT host FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host <> $3) AS others
                """, pipeKey + [.int32(Int32(bitPattern: me.rawValue)), .text(String(schema.channel(of: 0).dropLast()))])
        }
    }

    func recordOpen(of host: HostID, _ handle: PipeHandle, access: AccessMode, on connection: Connection) throws(ClusterError) {
        try connection.execute("INSERT INTO \(schema.table("opens")) (space, name, host, handle, access) VALUES ($1, $2, $3, $4, $5)",
                               pipeKey + [.int32(Int32(bitPattern: host.rawValue)), .int64(Int64(bitPattern: handle.rawValue)), .int32(access.code)])
    }

    /// Forgets an open; false if it was not recorded (its host's removal closed it already).
    @discardableResult
    func forgetOpen(of host: HostID, _ handle: PipeHandle, on connection: Connection) throws(ClusterError) -> Bool {
        try connection.execute("DELETE FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host = $3 AND handle = $4",
                               pipeKey + [.int32(Int32(bitPattern: host.rawValue)), .int64(Int64(bitPattern: handle.rawValue))]).affected > 0
    }

    /// A host is gone: its waits withdrawn and its opens closed through the machine, as the
    /// kernel closes a dead process's descriptors. The effects for this host, and the state after.
    func removeHost(_ host: HostID, on connection: Connection) throws(ClusterError) -> (SharedEffects, [UInt8])? {
        guard var machine = try lock(on: connection, creating: nil) else { return nil }
        let rows = try connection.execute("SELECT handle, access FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host = $3",
                                          pipeKey + [.int32(Int32(bitPattern: host.rawValue))])
        var opens: [(OpenID, AccessMode)] = []
        for index in 0..<rows.count {
            guard let handle = rows.integer(index, 0), let access = rows.integer(index, 1).flatMap(AccessMode.init(code:)) else { continue }
            opens.append((OpenID(host: host, handle: PipeHandle(rawValue: UInt64(bitPattern: handle))), access))
        }
        let effects = machine.leave(host, opens: opens, at: .now())
        let state = machine.encoded
        try save(state, unused: machine.isUnused, on: connection)
        try connection.execute("DELETE FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host = $3",
                               pipeKey + [.int32(Int32(bitPattern: host.rawValue))])
        try tellOthers(effects, on: connection)
        return (effects, state)
    }
}
