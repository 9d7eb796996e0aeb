import PipeCore

/// `npfs status` and `user.npfs.clients` on a cluster mount: the space's pipes as the
/// server has them, each with its opens on every host (who made each, on which host, and
/// what it waits for, from the pipe's machine).
extension PostgresPipeStore {
    package func sharedStatus(of key: [UInt8]?) -> [SharedPipeStatus]? {
        worker(for: key ?? []).sync { worker in try? self.readStatus(of: key, on: worker.connected()) }
    }

    private func readStatus(of key: [UInt8]?, on connection: Connection) throws(ClusterError) -> [SharedPipeStatus] {
        let parameters: [SQLValue?] = [.text(settings.space)] + (key.map { [.bytes($0)] } ?? [])
        let pipes = try connection.pipeline([
            Statement("SELECT name, state FROM \(schema.table("pipes")) WHERE space = $1" + (key == nil ? "" : " AND name = $2"), parameters),
            Statement("""
                SELECT o.name, o.host, o.handle, o.access, o.pid, o.uid, o.command, (o.since * 1000)::bigint, h.name
                FROM \(schema.table("opens")) o LEFT JOIN \(schema.table("hosts")) h ON h.id = o.host
                WHERE o.space = $1\(key == nil ? "" : " AND o.name = $2") ORDER BY o.since, o.host, o.handle
                """, parameters),
        ])
        guard pipes.count == 2 else { throw ClusterError("the server sent no status") }
        var opens: [[UInt8]: [Int]] = [:]
        for row in 0..<pipes[1].count { if let name = pipes[1].bytes(row, 0) { opens[name, default: []].append(row) } }
        var found: [SharedPipeStatus] = []
        for row in 0..<pipes[0].count {
            guard let name = pipes[0].bytes(row, 0), let state = pipes[0].bytes(row, 1),
                  let machine = try? ClusterMachine(decoding: state, budget: budget) else { continue }
            let (waiting, losses) = (machine.waitingOpens, machine.losses)
            let rows = pipes[1]
            let clients = (opens[name] ?? []).compactMap { index -> PipeClient? in
                guard let host = rows.integer(index, 1).flatMap(UInt32.init(exactly:)), let handle = rows.integer(index, 2),
                      let access = rows.integer(index, 3).flatMap({ (0...2).contains($0) ? AccessMode(openFlags: Int32($0)) : nil })
                else { return nil }
                let open = OpenID(host: HostID(rawValue: host), handle: PipeHandle(rawValue: UInt64(bitPattern: handle)))
                let millis = rows.integer(index, 7) ?? 0
                return PipeClient(identity: ClientIdentity(pid: Int32(truncatingIfNeeded: rows.integer(index, 4) ?? 0),
                                                           uid: UInt32(truncatingIfNeeded: rows.integer(index, 5) ?? 0),
                                                           command: rows.text(index, 6) ?? ""),
                                  access: access, since: Timestamp(seconds: Int(millis / 1000), nanoseconds: Int(millis % 1000) * 1_000_000),
                                  waiting: waiting[open], lost: losses[open], host: rows.text(index, 8) ?? "#\(host)")
            }
            found.append(SharedPipeStatus(key: name, status: machine.status, clients: clients))
        }
        return found
    }
}
