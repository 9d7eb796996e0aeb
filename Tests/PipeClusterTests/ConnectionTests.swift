import Glibc
import NpfsTestSupport
import PipeCluster
import Testing

/// libpq through `Connection`, against a server of the test's own.
@Suite(.serialized) struct ConnectionTests {
    @Test func connectsAndMovesEachTypeBothWays() throws {
        try PostgresServer.with { server in
            let connection = try Connection(ClusterTarget(server.url()), timeout: 5)
            #expect(connection.isOK)
            #expect(connection.server == "127.0.0.1:\(server.port)/npfs")
            let bytes: [UInt8] = [0, 1, 0xff, 0x80, 10, 0]
            let rows = try connection.execute("SELECT $1::int8, $2::text, $3::bytea, $4::bool, $5::int4, $6::int8",
                                              [.int64(-5_000_000_000), .text("é\u{0}x".replacingOccurrences(of: "\u{0}", with: "")),
                                               .bytes(bytes), .bool(true), .int32(-7), nil])
            #expect(rows.count == 1)
            #expect(rows.integer(0, 0) == -5_000_000_000)
            #expect(rows.text(0, 1) == "éx")
            #expect(rows.bytes(0, 2) == bytes)
            #expect(rows.bool(0, 3) == true)
            #expect(rows.integer(0, 4) == -7)
            #expect(rows.isNull(0, 5))
            #expect(rows.integer(0, 5) == nil)
            let empty = try connection.execute("SELECT ''::bytea")
            #expect(empty.bytes(0, 0) == [])
        }
    }

    @Test func notificationsArriveOnTheListeningConnection() throws {
        try PostgresServer.with { server in
            let listener = try Connection(ClusterTarget(server.url()), timeout: 5)
            let sender = try Connection(ClusterTarget(server.url()), timeout: 5)
            try listener.execute("LISTEN npfs_test")
            #expect(try listener.notifications().isEmpty)
            try sender.execute("SELECT pg_notify('npfs_test', $1)", [.text("hello")])
            #expect(listener.waitReadable(timeout: 5))
            let received = try listener.notifications()
            #expect(received.map(\.channel) == ["npfs_test"])
            #expect(received.map(\.payload) == ["hello"])
        }
    }

    /// What the listener's loop relies on: a notification that arrives while the connection
    /// runs a statement is read into libpq then, so the socket has nothing more to say, and
    /// only `notifications()` finds it (a listener that only polled lost such a wake-up).
    @Test func aNotificationReadDuringAStatementIsFoundWithoutTheSocket() throws {
        try PostgresServer.with { server in
            let listener = try Connection(ClusterTarget(server.url()), timeout: 5)
            let sender = try Connection(ClusterTarget(server.url()), timeout: 5)
            try listener.execute("LISTEN npfs_test")
            try sender.execute("SELECT pg_notify('npfs_test', 'during')")
            usleep(200_000)
            try listener.execute("SELECT 1")
            #expect(!listener.waitReadable(timeout: 0.3), "the socket still had it")
            #expect(try listener.notifications().map(\.payload) == ["during"])
        }
    }

    @Test func failuresAreOneLineAndNeverShowThePassword() throws {
        try PostgresServer.with { server in
            let wrong = "Wr0ngSecret"
            let badPassword = try ClusterTarget(server.url(password: false).replacingOccurrences(of: "npfs@", with: "npfs:\(wrong)@"))
            #expect(badPassword.redacted.contains("npfs:***@127.0.0.1"))
            #expect(!badPassword.redacted.contains(wrong))
            let message = try failure { try Connection(badPassword, timeout: 5) }
            #expect(message.contains("password authentication failed"), "\(message)")
            #expect(!message.contains(wrong) && !message.contains("\n"))

            let missing = try failure { try Connection(ClusterTarget(String(server.url().dropLast("npfs".count)) + "nosuchdb"), timeout: 5) }
            #expect(missing.contains("\"nosuchdb\" does not exist"), "\(missing)")

            // The password from a passfile (mode 0600), as libpq's passfile keyword reads it.
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let passfile = directory + "/pgpass"
            try "127.0.0.1:\(server.port):npfs:npfs:\(server.password)\n".write(toFile: passfile, atomically: false, encoding: .utf8)
            chmod(passfile, 0o600)
            let viaFile = try Connection(ClusterTarget(server.url(password: false), passfile: passfile), timeout: 5)
            #expect(try viaFile.execute("SELECT current_user::text").text(0, 0) == "npfs")
        }
        // Nobody listens: refused at once, named as such.
        let started = Date()
        let refused = try failure { try Connection(ClusterTarget("postgresql://npfs:pw@127.0.0.1:1/npfs"), timeout: 2) }
        #expect(refused.contains("Connection refused"), "\(refused)")
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func aConnectionStringIsCheckedByLibpq() throws {
        #expect(throws: ClusterError.self) { try ClusterTarget("db.example") }
        #expect(throws: ClusterError.self) { try ClusterTarget("postgresql://h/db?nosuchparameter=1") }
        #expect(throws: ClusterError.self) { try ClusterTarget("host=h port") }
        #expect(try ClusterTarget("service=npfs").redacted == "service=npfs")
        #expect(try ClusterTarget("host=h password=s3cret dbname=d").redacted == "host=h password=*** dbname=d")
        #expect(try ClusterTarget("postgres://u:p%40ss@h1,h2/db?sslmode=require").password == "p@ss")
        #expect(try ClusterTarget("postgres://u:p%40ss@h1,h2/db?sslmode=require").redacted == "postgres://u:***@h1,h2/db?sslmode=require")
    }

    private func failure(_ body: () throws -> some Any) throws -> String {
        do {
            _ = try body()
        } catch let error as ClusterError {
            return error.description
        }
        throw TestFailure("expected a ClusterError")
    }
}

import Foundation
