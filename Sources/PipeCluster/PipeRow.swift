import PipeCore

/// The cluster's machine: bytes in pages of the `pages` table.
typealias ClusterMachine = SharedMachine<PagedBuffer>

/// One pipe's rows in PostgreSQL, within a transaction: its machine in `pipes` (locked for
/// the transaction), its bytes in `pages`, its opens in `opens`, and what its steps tell
/// other hosts. A step costs two round trips: the row locked and read (with this host's
/// opens of it, for a close) and the pages a read will want (`begin`), then everything it changes sent
/// with the commit (`saving`). A page it did not fetch ahead is read when needed.
struct PipeRow {
    let store: PostgresPipeStore
    let space: String
    let key: [UInt8]

    private var schema: Schema { store.schema }
    private var me: HostID { store.hostID }
    private var pipeKey: [SQLValue?] { [.text(space), .bytes(key)] }

    /// The pipe as locked: its machine, the opens `host` has recorded, with their access
    /// (if asked for), and the page of its oldest byte then.
    struct Locked: ~Copyable {
        var machine: ClusterMachine
        let opens: [PipeHandle: AccessMode]
        let firstLivePage: Int64
    }

    /// Locks the row: the machine, `host`'s opens (if `opensOf` is given), and `prefetch`
    /// bytes from the oldest buffered one, in one round trip (beginning the transaction
    /// first if `begin`); made with `creating` (settings and owner) if missing, or nil if
    /// missing and nothing is to be made.
    func lock(on connection: Connection, opensOf host: HostID?, prefetch: Int = 0, begin: Bool,
              creating: (PipeConfig, Ownership)?) throws(ClusterError) -> Locked? {
        let pipes = schema.table("pipes")
        // With it, whether this host is still in the cluster: one taken for gone (cut off,
        // its opens closed by the others) may make no step until it joined again.
        let select = Statement("SELECT state, EXISTS (SELECT 1 FROM \(schema.table("hosts")) WHERE id = $3) FROM \(pipes) "
                               + "WHERE space = $1 AND name = $2 FOR UPDATE", pipeKey + [.int32(Int32(bitPattern: me.rawValue))])
        let opens = host.map { host in
            Statement("SELECT handle, access FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host = $3",
                      pipeKey + [.int32(Int32(bitPattern: host.rawValue))])
        }
        let wanted = [select] + (opens.map { [$0] } ?? [])
        let pages = Statement("""
            SELECT page, data FROM \(schema.table("pages")) WHERE space = $1 AND name = $2
            AND page BETWEEN (SELECT head FROM \(pipes) WHERE space = $1 AND name = $2) / \(PagedBuffer.pageSize)
                AND ((SELECT head FROM \(pipes) WHERE space = $1 AND name = $2) + $3) / \(PagedBuffer.pageSize)
            """, pipeKey + [.int64(Int64(max(0, prefetch)))])
        var results = Array(try connection.pipeline((begin ? [Statement("BEGIN")] : []) + wanted + (prefetch > 0 ? [pages] : []))
            .dropFirst(begin ? 1 : 0))
        if results.count >= wanted.count, results[0].count == 0 {
            guard let (config, ownership) = creating else { return nil }
            let fresh = ClusterMachine(config: config, ownership: ownership, at: .now(), budget: store.budget)
            let made = try connection.pipeline([
                Statement("INSERT INTO \(pipes) (space, name, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", pipeKey + [.bytes(fresh.encoded)]),
            ] + wanted + [namesChanged])
            results = Array(made.dropFirst().prefix(wanted.count))
        }
        guard results.count >= wanted.count, let bytes = results[0].bytes(0, 0) else { throw ClusterError("a pipe's row went missing") }
        guard results[0].bool(0, 1) == true else { throw ClusterError("this host was taken for gone; it joins again") }
        var recorded: [PipeHandle: AccessMode] = [:]
        if opens != nil {
            for index in 0..<results[1].count {
                guard let handle = results[1].integer(index, 0),
                      let access = results[1].integer(index, 1).flatMap({ (0...2).contains($0) ? AccessMode(openFlags: Int32($0)) : nil })
                else { continue }
                recorded[PipeHandle(rawValue: UInt64(bitPattern: handle))] = access
            }
        }
        let machine: ClusterMachine
        do {
            machine = try ClusterMachine(decoding: bytes, budget: store.budget, source: PageReader(row: self, connection: connection))
        } catch {
            throw ClusterError("a pipe's state in PostgreSQL is damaged: \(error.description)")
        }
        if results.count > wanted.count { machine.preload(PipeRow.pages(in: results[wanted.count])) }
        return Locked(machine: machine, opens: recorded, firstLivePage: machine.pageChanges.firstLivePage)
    }

    /// The pipe's state as committed, unlocked (nil if the row is gone).
    func state(on connection: Connection) throws(ClusterError) -> [UInt8]? {
        try connection.execute("SELECT state FROM \(schema.table("pipes")) WHERE space = $1 AND name = $2", pipeKey).bytes(0, 0)
    }

    static func pages(in rows: Rows) -> [Int64: [UInt8]] {
        var pages: [Int64: [UInt8]] = [:]
        for index in 0..<rows.count {
            if let page = rows.integer(index, 0), let data = rows.bytes(index, 1) { pages[page] = data }
        }
        return pages
    }

    /// The machine written back with the pages it appended to and the ones it emptied
    /// dropped (or the row and its pages removed once nobody uses the pipe, unless
    /// persisted: then the commit waits for the server's disk), replies for other hosts' waits left in their mailboxes, they and (if the
    /// pipe's readiness changed) the other hosts with opens of it notified.
    /// Pages are dropped only if the oldest byte moved to a later page than `firstLivePage`
    /// (the one it was on when the row was locked; nil: look anyway).
    func saving(_ machine: borrowing ClusterMachine, effects: SharedEffects, firstLivePage before: Int64? = nil) -> [Statement] {
        let pipes = schema.table("pipes"), pageTable = schema.table("pages")
        // A persisted pipe's bytes are to outlive a server crash: as the server's
        // synchronous_commit says, not the connection's `off`.
        var statements = machine.isPersisted ? [Statement("SET LOCAL synchronous_commit TO DEFAULT")] : []
        let (start, appended, firstLivePage) = machine.pageChanges
        if !appended.isEmpty {
            // Each page's share of the appended bytes, added to what the page holds.
            var numbers: [Int64] = [], pieces: [[UInt8]] = []
            var position = start, offset = 0
            while offset < appended.count {
                let room = PagedBuffer.pageSize - Int(position % UInt64(PagedBuffer.pageSize))
                let piece = Array(appended[offset..<min(appended.count, offset + room)])
                numbers.append(PagedBuffer.page(of: position))
                pieces.append(piece)
                offset += piece.count
                position += UInt64(piece.count)
            }
            statements.append(Statement("""
                INSERT INTO \(pageTable) (space, name, page, data) SELECT $1, $2, page, data FROM unnest($3::bigint[], $4::bytea[]) AS t(page, data)
                ON CONFLICT (space, name, page) DO UPDATE SET data = \(pageTable).data || EXCLUDED.data
                """, pipeKey + [.int64Array(numbers), .bytesArray(pieces)]))
        }
        if before.map({ firstLivePage > $0 }) ?? true {
            statements.append(Statement("DELETE FROM \(pageTable) WHERE space = $1 AND name = $2 AND page < $3", pipeKey + [.int64(firstLivePage)]))
        }
        if machine.isUnused {
            statements.append(Statement("""
                WITH gone AS (DELETE FROM \(pipes) WHERE space = $1 AND name = $2 RETURNING name)
                DELETE FROM \(pageTable) WHERE space = $1 AND name IN (SELECT name FROM gone)
                """, pipeKey))
            statements.append(namesChanged)
        }
        statements.append(Statement("UPDATE \(pipes) SET state = $3, head = $4, persist = $5, changed = now() WHERE space = $1 AND name = $2",
                                    pipeKey + [.bytes(machine.encoded), .int64(Int64(bitPattern: machine.positions.head)),
                                               .bool(machine.isPersisted)]))
        let remote = effects.replies.filter { $0.wait.host != me }
        if !remote.isEmpty {
            // Every reply in one statement, and one notification per host.
            statements.append(Statement("""
                WITH mail AS (INSERT INTO \(schema.table("mailbox")) (host, wait, reply)
                    SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[]) RETURNING host)
                SELECT pg_notify($4 || host::text, 'm') FROM (SELECT DISTINCT host FROM mail) AS told
                """, [.int32Array(remote.map { Int32(bitPattern: $0.wait.host.rawValue) }),
                      .int64Array(remote.map { Int64(bitPattern: $0.wait.number) }),
                      .bytesArray(remote.map { $0.reply.encoded }), .text(schema.channelPrefix)]))
        }
        if effects.readinessChanged || effects.viewChanged {
            // Readiness matters to the hosts whose opens of the pipe were polled (see
            // `markingPolled`): a notification costs every listening backend a wake-up and
            // serializes commits, and most steps change readiness. The new state rides
            // along when it fits a notification (8000 bytes), saving each host a query to read it.
            let state = machine.encoded
            let carried = state.count * 2 + key.count * 2 < 7000 ? Hex.encode(state) : ""
            statements.append(Statement("""
                SELECT pg_notify($4 || host::text, 'c' || encode($2, 'hex') || ':' || $5)
                FROM (SELECT DISTINCT host FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host <> $3 AND (polled OR $6)) AS others
                """, pipeKey + [.int32(Int32(bitPattern: me.rawValue)), .text(schema.channelPrefix), .text(carried), .bool(effects.viewChanged)]))
        }
        return statements
    }

    /// Tells the space's hosts (this one too) that its pipe names changed (a pipe was made or removed).
    private var namesChanged: Statement {
        Statement("SELECT pg_notify($2 || id::text, 'n') FROM \(schema.table("hosts")) WHERE space = $1",
                  [.text(space), .text(schema.channelPrefix)])
    }

    func recordingOpen(of host: HostID, _ handle: PipeHandle, access: AccessMode) -> Statement {
        let (client, since) = store.client(of: handle) ?? (ClientIdentity(pid: 0, uid: 0, command: ""), Timestamp.now())
        return Statement("INSERT INTO \(schema.table("opens")) (space, name, host, handle, access, pid, uid, command, since) "
                         + "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                         pipeKey + [.int32(Int32(bitPattern: host.rawValue)), .int64(Int64(bitPattern: handle.rawValue)), .int32(access.openFlags),
                                    .int32(client.pid), .int64(Int64(client.uid)), .text(client.command), .double(since.secondsSinceEpoch)])
    }

    /// Marks an open as polled, from now on told of the pipe's readiness changes, and reads
    /// the pipe's state, in one transaction, under the row's lock (shared): a step of another
    /// host either committed before (its state is the one read) or comes after and sees the
    /// mark (and notifies). Nil if the row is gone.
    func markingPolled(_ handle: PipeHandle, on connection: Connection) throws(ClusterError) -> [UInt8]? {
        let results = try connection.pipeline([
            Statement("BEGIN"),
            Statement("SELECT state FROM \(schema.table("pipes")) WHERE space = $1 AND name = $2 FOR SHARE", pipeKey),
            Statement("UPDATE \(schema.table("opens")) SET polled = true WHERE space = $1 AND name = $2 AND host = $3 AND handle = $4",
                      pipeKey + [.int32(Int32(bitPattern: me.rawValue)), .int64(Int64(bitPattern: handle.rawValue))]),
            Statement("COMMIT"),
        ])
        guard results.count >= 2 else { throw ClusterError("a poll's transaction was cut short") }
        return results[1].bytes(0, 0)
    }

    func forgettingOpen(of host: HostID, _ handle: PipeHandle) -> Statement {
        Statement("DELETE FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host = $3 AND handle = $4",
                  pipeKey + [.int32(Int32(bitPattern: host.rawValue)), .int64(Int64(bitPattern: handle.rawValue))])
    }

    /// A host is gone: its waits withdrawn and its opens closed through the machine, as the
    /// kernel closes a dead process's descriptors (within the caller's transaction). The
    /// effects for this host, and the state after.
    func removeHost(_ host: HostID, on connection: Connection) throws(ClusterError) -> (SharedEffects, [UInt8])? {
        guard var pipe = try lock(on: connection, opensOf: host, begin: false, creating: nil) else { return nil }
        let recorded = pipe.opens.map { (OpenID(host: host, handle: $0.key), $0.value) }
        let effects = pipe.machine.leave(host, opens: recorded, at: .now())
        let forget = Statement("DELETE FROM \(schema.table("opens")) WHERE space = $1 AND name = $2 AND host = $3",
                               pipeKey + [.int32(Int32(bitPattern: host.rawValue))])
        _ = try connection.pipeline([forget] + saving(pipe.machine, effects: effects))
        return (effects, pipe.machine.encoded)
    }
}

/// Reads a pipe's pages a step needs and did not fetch ahead, on the step's connection.
final class PageReader: PageSource, @unchecked Sendable {
    private let row: PipeRow
    private let connection: Connection

    init(row: PipeRow, connection: Connection) {
        self.row = row
        self.connection = connection
    }

    func pages(_ first: Int64, _ last: Int64) -> [Int64: [UInt8]] {
        guard let rows = try? connection.execute("""
            SELECT page, data FROM \(row.store.schema.table("pages")) WHERE space = $1 AND name = $2 AND page BETWEEN $3 AND $4
            """, [.text(row.space), .bytes(row.key), .int64(first), .int64(last)]) else { return [:] }
        return PipeRow.pages(in: rows)
    }
}
