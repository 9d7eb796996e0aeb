import Foundation
import Glibc

/// A PostgreSQL server of the test's own: Debian's `postgresql` binaries, a cluster made
/// by initdb in a temp directory, run by an unprivileged user made for it (PostgreSQL
/// refuses root), on a free port of 127.0.0.1, with password (scram-sha-256) logins only.
/// It holds a role and a database, both named `npfs`, the role with a password. `stop()`
/// (also on failure: use `with`) stops the server by its PID and removes the directory
/// and the user.
package final class PostgresServer: @unchecked Sendable {
    package let port: Int
    package let role = "npfs"
    package let database = "npfs"
    package let password: String
    /// The superuser's name and password (initdb's), for the tests' own queries.
    private let adminPassword: String
    private let directory: String
    private let user: String
    private let binaries: String
    private var dataDirectory: String { directory + "/data" }
    private var standbyDirectory: String { directory + "/standby" }
    /// The standby's port, once `startStandby` made one.
    package private(set) var standbyPort: Int?

    /// `postgresql://npfs:PASSWORD@127.0.0.1:PORT/npfs`, and any `query` after a `?`.
    package func url(password: Bool = true, query: String? = nil) -> String {
        "postgresql://\(role)\(password ? ":" + self.password : "")@127.0.0.1:\(port)/\(database)" + (query.map { "?" + $0 } ?? "")
    }

    /// Runs `body` with a new server, always stopping it and removing what it made.
    package static func with<T>(_ body: (PostgresServer) throws -> T) throws -> T {
        let server = try PostgresServer()
        defer { server.remove() }
        return try body(server)
    }

    private init() throws {
        guard let binaries = PostgresServer.findBinaries() else {
            throw TestFailure("PostgreSQL's server is not installed (Debian's postgresql package; ./test.sh installs it)")
        }
        self.binaries = binaries
        password = PostgresServer.randomSecret()
        adminPassword = PostgresServer.randomSecret()
        user = "npfspg\(getpid() % 100_000)\(Int.random(in: 100...999))"
        port = try PostgresServer.freePort()
        directory = try makeTemporaryDirectory()
        var made = false
        do {
            // useradd fails while another one holds /etc/passwd's lock (tests run in parallel): try again.
            let useradd = ["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", user]
            for attempt in 1...10 {
                do {
                    try PostgresServer.must(useradd)
                    break
                } catch where attempt < 10 {
                    usleep(200_000)
                }
            }
            made = true
            chmod(directory, 0o755)
            try "\(adminPassword)\n".write(toFile: directory + "/admin.pw", atomically: false, encoding: .utf8)
            try PostgresServer.must(["chown", "-R", "\(user):\(user)", directory])
            chmod(directory + "/admin.pw", 0o600)
            try asUser([binaries + "/initdb", "-D", dataDirectory, "-U", "postgres", "--pwfile=" + directory + "/admin.pw",
                        "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"], timeout: 120)
            try start()
            try admin("CREATE ROLE \(role) LOGIN PASSWORD '\(password)'")
            try admin("CREATE DATABASE \(database) OWNER \(role)")
        } catch {
            if made { remove() } else { try? FileManager.default.removeItem(atPath: directory) }
            throw error
        }
    }

    /// Starts the server (again), waiting until it accepts connections.
    package func start() throws {
        let addresses = (["127.0.0.1"] + extraAddresses).joined(separator: ",")
        let options = "-p \(port) -k \(directory) -c listen_addresses=\(addresses) -c max_connections=200"
        try asUser([binaries + "/pg_ctl", "-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60",
                    "-o", options, "start"], timeout: 90)
    }

    /// Addresses the server listens on besides 127.0.0.1 (see `listen(on:for:)`).
    private var extraAddresses: [String] = []

    /// Listens on `address` too, and lets `client` log in from there with a password (a
    /// line in pg_hba.conf): the server restarts.
    package func listen(on address: String, for client: String) throws {
        let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/pg_hba.conf"))
        defer { try? hba.close() }
        try hba.seekToEnd()
        try hba.write(contentsOf: Data("host all all \(client)/32 scram-sha-256\n".utf8))
        extraAddresses.append(address)
        stopServer()
        try start()
    }

    /// `url()` with another address for the server.
    package func url(at address: String) -> String {
        url().replacingOccurrences(of: "@127.0.0.1:", with: "@\(address):")
    }

    /// Stops the server: `fast` (sessions ended, a clean shutdown) or `immediate` (as a crash).
    package func stopServer(mode: String = "fast") {
        _ = try? asUser([binaries + "/pg_ctl", "-D", dataDirectory, "-m", mode, "-w", "-t", "60", "stop"], timeout: 90)
        if let pid = postmasterPID, kill(pid, 0) == 0 {
            kill(pid, SIGKILL)
            _ = eventually(timeout: 10) { kill(pid, 0) != 0 }
        }
    }

    /// The server's own process, from its postmaster.pid.
    private var postmasterPID: pid_t? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
              let line = text.split(separator: "\n").first else { return nil }
        return pid_t(line)
    }

    /// A streaming standby of this server (pg_basebackup, in the server's directory, run by
    /// the same user) on a port of its own, `synchronous` (commits that wait for the disk
    /// wait for it too) or not; its port. `promoteStandby` makes it a primary; it is stopped
    /// and removed with the server.
    @discardableResult
    package func startStandby(synchronous: Bool) throws -> Int {
        let standbyPort = try PostgresServer.freePort()
        try asUser([binaries + "/pg_basebackup", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-D", standbyDirectory,
                    "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"], timeout: 120, environment: ["PGPASSWORD": adminPassword])
        let settings = standbyDirectory + "/postgresql.auto.conf"
        let conninfo = "host=127.0.0.1 port=\(port) user=postgres password=\(adminPassword)"
        let existing = (try? String(contentsOfFile: settings, encoding: .utf8)) ?? ""
        try (existing + "primary_conninfo = '\(conninfo)'\n").write(toFile: settings, atomically: false, encoding: .utf8)
        let options = "-p \(standbyPort) -k \(directory) -c listen_addresses=127.0.0.1 -c max_connections=200"
        try asUser([binaries + "/pg_ctl", "-D", standbyDirectory, "-l", directory + "/standby.log", "-w", "-t", "60",
                    "-o", options, "start"], timeout: 90)
        self.standbyPort = standbyPort
        if synchronous {
            try admin("ALTER SYSTEM SET synchronous_standby_names = '*'")
            try admin("SELECT pg_reload_conf()")
            guard eventually(timeout: 20, { (try? admin("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")) == "1" }) else {
                throw TestFailure("the standby did not become synchronous: \(standbyLog)")
            }
        }
        return standbyPort
    }

    /// Makes the standby a primary (the server, stopped first, is gone as in a failover).
    package func promoteStandby() throws {
        try asUser([binaries + "/pg_ctl", "-D", standbyDirectory, "-w", "-t", "60", "promote"], timeout: 90)
    }

    /// The standby's log so far.
    package var standbyLog: String { (try? String(contentsOfFile: directory + "/standby.log", encoding: .utf8)) ?? "" }

    /// Runs `sql` as the superuser on `database` (of the standby, given its port); what
    /// psql printed (unaligned, tuples only).
    @discardableResult
    package func admin(_ sql: String, database: String = "postgres", port: Int? = nil) throws -> String {
        let result = try ChildProcess.run([binaries + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                           "-h", "127.0.0.1", "-p", String(port ?? self.port), "-U", "postgres", "-d", database, "-c", sql],
                                          timeout: 60, environment: ["PGPASSWORD": adminPassword])
        guard result.status == 0 else { throw TestFailure("psql \(sql): \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The payloads of the notifications sent on `channel` while `body` ran (a psql of the
    /// test's own listens from before it starts until a second after it ends).
    package func notifications(on channel: String, during body: () throws -> Void) throws -> [String] {
        let marker = directory + "/listening-\(channel)"
        let listener = try ChildProcess([binaries + "/psql", "-X", "-q", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", database,
                                         "-c", "LISTEN \(channel)", "-c", "\\! touch \(marker)",
                                         "-c", "DO $$ BEGIN FOR i IN 1..1200 LOOP EXIT WHEN pg_stat_file('\(marker)', true) IS NULL; PERFORM pg_sleep(0.1); END LOOP; END $$"],
                                        environment: ["PGPASSWORD": adminPassword])
        defer { listener.signal(SIGKILL) }
        // Listening once the marker is there; the sleeps end when the test removes it.
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: marker) && Date() < deadline { usleep(20_000) }
        guard FileManager.default.fileExists(atPath: marker) else { throw TestFailure("psql did not listen: \(listener.output)") }
        try body()
        usleep(1_000_000)
        try FileManager.default.removeItem(atPath: marker)
        guard listener.wait(timeout: 10) != nil else { throw TestFailure("psql went on listening") }
        return listener.output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("Asynchronous notification"), let start = line.range(of: "with payload \"") else { return nil }
            return String(line[start.upperBound...].prefix { $0 != "\"" })
        }
    }

    /// Turns TLS on (connections without it still work): a certificate authority made
    /// for the test (`openssl`, in the server's directory) signs the server's certificate
    /// for 127.0.0.1. Returns the authority's certificate, for `sslrootcert=`.
    package func enableTLS() throws -> String {
        let ca = try makeAuthority(named: "ca")
        let key = directory + "/server.key", request = directory + "/server.csr", certificate = directory + "/server.crt"
        try PostgresServer.must(["openssl", "req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", key, "-out", request,
                                 "-subj", "/CN=127.0.0.1"])
        let extensions = directory + "/server.ext"
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: extensions, atomically: false, encoding: .utf8)
        try PostgresServer.must(["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", directory + "/ca.key",
                                 "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", certificate])
        try PostgresServer.must(["chown", "\(user):\(user)", key, certificate])
        chmod(key, 0o600)
        try admin("ALTER SYSTEM SET ssl_cert_file = '\(certificate)'")
        try admin("ALTER SYSTEM SET ssl_key_file = '\(key)'")
        try admin("ALTER SYSTEM SET ssl = on")
        try admin("SELECT pg_reload_conf()")
        guard eventually(timeout: 10, { (try? admin("SHOW ssl")) == "on" }) else { throw TestFailure("TLS did not come on: \(log)") }
        return ca
    }

    /// A certificate authority of the test's own (another one than the server's, for a
    /// certificate that must not be trusted): its certificate's path.
    package func makeAuthority(named name: String) throws -> String {
        let certificate = directory + "/\(name).crt"
        try PostgresServer.must(["openssl", "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "2",
                                 "-keyout", directory + "/\(name).key", "-out", certificate, "-subj", "/CN=npfs test \(name)"])
        chmod(certificate, 0o644)
        return certificate
    }

    /// The server's log so far (for failure messages).
    package var log: String { (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "" }

    private func remove() {
        if standbyPort != nil {
            _ = try? asUser([binaries + "/pg_ctl", "-D", standbyDirectory, "-m", "immediate", "-w", "-t", "60", "stop"], timeout: 90)
        }
        stopServer(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
        _ = try? ChildProcess.run(["userdel", user], timeout: 30)
    }

    private func asUser(_ arguments: [String], timeout: Double, environment: [String: String] = [:]) throws {
        let result = try ChildProcess.run(["setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--"] + arguments,
                                          timeout: timeout, environment: environment)
        guard result.status == 0 else {
            throw TestFailure("\(arguments.first ?? "") failed (\(result.status)): \(result.output)")
        }
    }

    private static func must(_ arguments: [String]) throws {
        let result = try ChildProcess.run(arguments, timeout: 30)
        guard result.status == 0 else { throw TestFailure("\(arguments.joined(separator: " ")): \(result.output)") }
    }

    /// The newest installed version's bin directory (/usr/lib/postgresql/N/bin).
    private static func findBinaries() -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.compactMap(Int.init).sorted().reversed()
            .map { "/usr/lib/postgresql/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    /// A port of 127.0.0.1 nobody listens on now (the kernel's choice).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func randomSecret() -> String {
        String((0..<20).map { _ in "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789".randomElement() ?? "x" })
    }
}
