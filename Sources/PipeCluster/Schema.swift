/// npfs's tables in PostgreSQL, in one schema (`cluster_schema`, default `npfs`), made on
/// the first mount that finds them missing and carrying a version: a daemon refuses a
/// newer one than it knows.
///
/// - `meta`: the version, and since when each server (by its start time) serves the
///   cluster (`serving_since()`, the grace a restart or a failover gives hosts).
/// - `hosts`: every mount taking part, by space; its id names its opens and waits.
/// - `pipes`: each live (or persisted) pipe's machine, encoded (`SharedMachine`), and the
///   stream position of its oldest buffered byte.
/// - `pages`: its buffered bytes, as 8 KiB pages of its stream (`PagedBuffer`), stored
///   uncompressed.
/// - `opens`: each open of a pipe, by host and handle (to close a dead host's opens), with
///   the process that made it and when (for the clients `npfs status` lists), and whether
///   it was polled (its host is then told of the pipe's readiness changes).
/// Tables whose rows come and go with the bytes (`pages`, `pipes`, `mailbox`) are vacuumed
/// after every thousand dead rows, so that storage follows what is buffered.
/// - `mailbox`: replies to waiting requests of other hosts, fetched by the host after a
///   notification on its channel.
/// - `beat(...)`: a host's heartbeat and its watch on the next host's lease, in one
///   statement (see `LeaseWatcher`).
package struct Schema: Sendable {
    package static let version = 1
    /// The schema's name, checked to be a plain identifier.
    package let name: String

    package init(_ name: String) throws(ClusterError) {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || first == "_", name.utf8.count <= 48,
              name.unicodeScalars.allSatisfy({ ($0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil)) || $0 == "_" })
        else {
            throw ClusterError("bad cluster_schema '\(name)': give letters, digits and _ (at most 48), starting with a letter")
        }
        self.name = name.lowercased()
    }

    /// A table's qualified name.
    package func table(_ table: String) -> String { "\(name).\(table)" }

    /// Makes the schema if it is missing (one daemon at a time, under an advisory lock), then
    /// checks its version.
    package func prepare(on connection: Connection) throws(ClusterError) {
        try connection.executeScript("""
            BEGIN;
            SELECT pg_advisory_xact_lock(hashtext('npfs schema \(name)'));
            CREATE SCHEMA IF NOT EXISTS \(name);
            CREATE TABLE IF NOT EXISTS \(name).meta (key text PRIMARY KEY, value text NOT NULL);
            INSERT INTO \(name).meta VALUES ('version', '\(Schema.version)') ON CONFLICT (key) DO NOTHING;
            CREATE SEQUENCE IF NOT EXISTS \(name).host_ids MINVALUE 1 MAXVALUE 2147483647 CYCLE;
            CREATE TABLE IF NOT EXISTS \(name).hosts (
                id integer PRIMARY KEY, space text NOT NULL, name text NOT NULL, pid integer NOT NULL, backend integer,
                started timestamptz NOT NULL DEFAULT now(), heartbeat timestamptz NOT NULL DEFAULT now());
            CREATE TABLE IF NOT EXISTS \(name).pipes (
                space text NOT NULL, name bytea NOT NULL, state bytea NOT NULL, persist boolean NOT NULL DEFAULT false,
                head bigint NOT NULL DEFAULT 0, changed timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (space, name));
            CREATE TABLE IF NOT EXISTS \(name).pages (
                space text NOT NULL, name bytea NOT NULL, page bigint NOT NULL, data bytea NOT NULL,
                PRIMARY KEY (space, name, page));
            ALTER TABLE \(name).pages ALTER COLUMN data SET STORAGE EXTERNAL;
            ALTER TABLE \(name).pages SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                            autovacuum_vacuum_cost_delay = 0, toast.autovacuum_vacuum_scale_factor = 0,
                                            toast.autovacuum_vacuum_threshold = 1000, toast.autovacuum_vacuum_cost_delay = 0);
            ALTER TABLE \(name).pipes SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                            autovacuum_vacuum_cost_delay = 0);
            CREATE TABLE IF NOT EXISTS \(name).opens (
                space text NOT NULL, name bytea NOT NULL, host integer NOT NULL, handle bigint NOT NULL, access smallint NOT NULL,
                PRIMARY KEY (space, name, host, handle));
            CREATE INDEX IF NOT EXISTS opens_by_host ON \(name).opens (host);
            ALTER TABLE \(name).opens ADD COLUMN IF NOT EXISTS pid integer, ADD COLUMN IF NOT EXISTS uid bigint,
                ADD COLUMN IF NOT EXISTS command text, ADD COLUMN IF NOT EXISTS since double precision,
                ADD COLUMN IF NOT EXISTS polled boolean NOT NULL DEFAULT false;
            CREATE TABLE IF NOT EXISTS \(name).mailbox (
                id bigserial PRIMARY KEY, host integer NOT NULL, wait bigint NOT NULL, reply bytea NOT NULL);
            CREATE INDEX IF NOT EXISTS mailbox_by_host ON \(name).mailbox (host);
            CREATE OR REPLACE FUNCTION \(name).serving_since() RETURNS timestamptz LANGUAGE sql STABLE AS $serving$
                SELECT coalesce((SELECT value::timestamptz FROM \(name).meta WHERE key = 'serving:' || extract(epoch FROM pg_postmaster_start_time())::text), now())
            $serving$;
            \(beatFunction)
            ALTER TABLE \(name).mailbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                              autovacuum_vacuum_cost_delay = 0, toast.autovacuum_vacuum_scale_factor = 0,
                                              toast.autovacuum_vacuum_threshold = 1000, toast.autovacuum_vacuum_cost_delay = 0);
            COMMIT;
            """)
        let rows = try connection.execute("SELECT value FROM \(name).meta WHERE key = 'version'")
        guard let text = rows.text(0, 0), let found = Int(text) else {
            throw ClusterError("the cluster schema \(name) has no version: is it npfs's?")
        }
        guard found <= Schema.version else {
            throw ClusterError("the cluster schema \(name) is version \(found), newer than this npfs knows (\(Schema.version)): upgrade npfs")
        }
    }

    /// A host's heartbeat: the backends of hosts silent for longer than `timeout` seconds
    /// ended (a host cut off from the network, whose connection the
    /// server would otherwise keep for long); the space's hosts counted; the leases of its
    /// other hosts that are free taken (their daemon died unnoticed) and listed; then, for
    /// at most `patience` seconds, a wait for the lease of the next host round the ring by
    /// id, which the server grants the moment that host's connection is gone; then its
    /// row's time set. The wait
    /// ends without an error (a lock timeout or a cancel is caught), so that it is never
    /// longer than `patience`: a statement that waits holds back what VACUUM may remove,
    /// in every table of the database, for as long as it runs.
    private var beatFunction: String {
        let hosts = table("hosts")
        return """
            CREATE OR REPLACE FUNCTION \(name).beat(p_space text, p_me integer, p_lease text, p_timeout float8, p_patience float8,
                OUT hosts bigint, OUT free text, OUT next integer, OUT next_gone boolean) LANGUAGE plpgsql AS $beat$
            BEGIN
                -- Since when this server serves the cluster (restarted, or a standby promoted,
                -- whose start is older than its being primary): see serving_since.
                INSERT INTO \(table("meta")) VALUES ('serving:' || extract(epoch FROM pg_postmaster_start_time())::text, now()::text) ON CONFLICT (key) DO NOTHING;
                -- Not within the timeout of a restart of the server, when every heartbeat is old.
                PERFORM pg_terminate_backend(h.backend) FROM \(hosts) h
                    WHERE h.space = p_space AND h.id <> p_me AND h.heartbeat < now() - make_interval(secs => p_timeout)
                    AND \(name).serving_since() < now() - make_interval(secs => p_timeout)
                    AND h.backend IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database());
                SELECT count(*) INTO hosts FROM \(hosts) h WHERE h.space = p_space;
                SELECT string_agg(h.id::text, ',') INTO free FROM \(hosts) h
                    WHERE h.space = p_space AND h.id <> p_me AND pg_try_advisory_lock(hashtext(p_lease), h.id);
                SELECT h.id INTO next FROM \(hosts) h WHERE h.space = p_space AND h.id <> p_me ORDER BY h.id <= p_me, h.id LIMIT 1;
                next_gone := false;
                IF next IS NOT NULL AND NOT coalesce(next::text = ANY (string_to_array(free, ',')), false) THEN
                    BEGIN
                        PERFORM set_config('lock_timeout', greatest(1, (p_patience * 1000)::integer)::text || 'ms', true);
                        PERFORM pg_advisory_lock(hashtext(p_lease), next);
                        next_gone := true;
                    EXCEPTION WHEN lock_not_available OR query_canceled THEN
                        NULL;
                    END;
                END IF;
                -- Last, so that the row is not locked while this waits: a host that dies
                -- mid-wait would keep it locked (its backend waits on) and its removal wait.
                UPDATE \(hosts) SET heartbeat = clock_timestamp() WHERE id = p_me;
            END
            $beat$;
            """
    }

    /// The channel a host listens on for replies and changes meant for it.
    package func channel(of host: HostNumber) -> String { channelPrefix + String(host) }
    /// The advisory locks of this schema's hosts' leases: `pg_advisory_lock(hashtext(leaseKey), host)`.
    package var leaseKey: String { "npfs lease \(name)" }

    /// What every host's channel starts with (its number follows).
    package var channelPrefix: String { "\(name)_host_" }
}

/// A host's id in the cluster, as the `hosts` table gave it.
package typealias HostNumber = UInt32
