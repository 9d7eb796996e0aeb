import CLibPQ
import PipeCore
import Glibc

/// One connection to PostgreSQL through libpq, the reference client: URLs, service files,
/// `PGPASSFILE`/`~/.pgpass`, `sslmode` and multi-host failover behave as every PostgreSQL
/// user knows them. Every libpq call npfs makes is in this file.
///
/// Used by one thread at a time (its owner serializes), never by a FUSE thread.
package final class Connection: @unchecked Sendable {
    private let connection: OpaquePointer
    /// A password the user wrote, to blank out of any message that might echo it.
    private let secret: String?
    /// Statements the server has parsed and planned already, by their text: each is
    /// prepared on its first use and run by name after that.
    private var prepared: [String: String] = [:]

    /// Connects to `target`, giving up after `timeout` seconds (libpq's `connect_timeout`,
    /// which counts whole seconds, at least 2, per host tried).
    package init(_ target: ClusterTarget, timeout: Double, applicationName: String = "npfs") throws(ClusterError) {
        var keywords = ["dbname", "connect_timeout", "fallback_application_name"]
        var values = [target.conninfo, String(max(2, Int(timeout.rounded(.up)))), applicationName]
        if let passfile = target.passfile {
            keywords.append("passfile")
            values.append(passfile)
        }
        let made = Connection.withCStrings(keywords) { keys in
            Connection.withCStrings(values) { vals in PQconnectdbParams(keys, vals, 1) }
        }
        guard let made else { throw ClusterError("cannot reach PostgreSQL: out of memory") }
        secret = target.password
        guard PQstatus(made) == CONNECTION_OK else {
            let message = Connection.message(PQerrorMessage(made), hiding: target.password)
            PQfinish(made)
            throw ClusterError(message.isEmpty ? "cannot connect to \(target.redacted)" : message)
        }
        // The server's notices (such as "already exists, skipping") are not the user's business.
        PQsetNoticeProcessor(made, { _, _ in }, nil)
        connection = made
    }

    deinit { PQfinish(connection) }

    /// The server's host and port, and the database, as connected (for status lines).
    package var server: String {
        let host = PQhost(connection).map { String(cString: $0) } ?? "?"
        let port = PQport(connection).map { String(cString: $0) } ?? "?"
        let database = PQdb(connection).map { String(cString: $0) } ?? "?"
        return "\(host.hasPrefix("/") ? "socket \(host)" : host):\(port)/\(database)"
    }

    /// The connection still works as far as libpq knows, and never failed to answer in time.
    package var isOK: Bool { !abandoned && PQstatus(connection) == CONNECTION_OK }

    /// How long a statement (or a pipeline of them) may take before the connection is
    /// given up: a server or network that went silent (a cut cable sends no reset) must
    /// not hold a thread for the kernel's retransmission timeout, a quarter of an hour.
    package var patience: Double = 30
    /// Given up after a statement that did not answer in time: never used again.
    private var abandoned = false

    /// Asks the server to cancel the statement running on this connection now (from any
    /// thread); that statement then fails with SQLSTATE 57014.
    package func cancelRunningStatement() {
        guard let cancel = PQgetCancel(connection) else { return }
        var message = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &message, Int32(message.count))
        PQfreeCancel(cancel)
    }

    /// The descriptor to poll for notifications.
    package var socket: Int32 { PQsocket(connection) }

    /// Runs `sql` with `parameters` ($1, $2, ...), sent and answered in binary; the rows.
    @discardableResult
    package func execute(_ sql: String, _ parameters: [SQLValue?] = []) throws(ClusterError) -> Rows {
        let sent = Connection.withParameters(parameters) { types, values, lengths, formats in
            PQsendQueryParams(connection, sql, Int32(parameters.count), types, values, lengths, formats, 1)
        }
        guard sent == 1 else { throw failure }
        return try lastResult()
    }

    /// The results of what was sent, the last one's rows (or the first error), each waited
    /// for at most `patience` seconds in all.
    private func lastResult() throws(ClusterError) -> Rows {
        let end = Timestamp.monotonicSeconds() + patience
        var last: Rows?
        var first: ClusterError?
        while true {
            try awaitResult(until: end)
            guard let result = PQgetResult(connection) else { break }
            do { last = try succeeded(result) } catch { first = first ?? error }
        }
        if let first { throw first }
        guard let last else { throw failure }
        return last
    }

    /// Waits until libpq holds a whole result (or the connection failed, which the next
    /// PQgetResult reports); past `end`, gives the connection up.
    private func awaitResult(until end: Double) throws(ClusterError) {
        while PQisBusy(connection) == 1 {
            let left = end - Timestamp.monotonicSeconds()
            guard left > 0 else {
                abandoned = true
                Glibc.shutdown(PQsocket(connection), Int32(SHUT_RDWR))
                throw ClusterError("PostgreSQL did not answer within \(Int(patience.rounded(.up))) s")
            }
            var entry = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
            if poll(&entry, 1, Int32(min(left, 1) * 1000) + 1) < 0 && errno != EINTR { return }
            if PQconsumeInput(connection) == 0 { return }
        }
    }

    /// Sends `statements` together (libpq's pipeline mode: one round trip) and returns each
    /// one's rows. The server stops at the first that fails, whose error is thrown; inside
    /// a transaction, the caller then rolls it back.
    package func pipeline(_ statements: [Statement]) throws(ClusterError) -> [Rows] {
        // Prepared first: preparing is not allowed in pipeline mode.
        var names: [String] = []
        for statement in statements { names.append(try preparedName(statement)) }
        guard PQenterPipelineMode(connection) == 1 else { throw failure }
        defer { PQexitPipelineMode(connection) }
        for (statement, name) in zip(statements, names) {
            let sent = Connection.withParameters(statement.parameters) { _, values, lengths, formats in
                PQsendQueryPrepared(connection, name, Int32(statement.parameters.count), values, lengths, formats, 1)
            }
            guard sent == 1 else { throw failure }
        }
        guard PQpipelineSync(connection) == 1 else { throw failure }
        var rows: [Rows] = []
        var first: ClusterError?
        // Each statement's result, then a NULL; at the end, the sync point.
        var nulls = 0
        let end = Timestamp.monotonicSeconds() + patience
        while true {
            try awaitResult(until: end)
            guard let result = PQgetResult(connection) else {
                nulls += 1
                if PQstatus(connection) != CONNECTION_OK || nulls > 2 * statements.count + 2 { throw failure }
                continue
            }
            switch PQresultStatus(result) {
            case PGRES_PIPELINE_SYNC:
                PQclear(result)
                if let first { throw first }
                return rows
            case PGRES_PIPELINE_ABORTED:   // skipped after the first failure
                PQclear(result)
            default:
                do { rows.append(try succeeded(result)) } catch { first = first ?? error }
            }
        }
    }

    /// The server's name for `statement`, prepared (parsed and planned) on its first use.
    private func preparedName(_ statement: Statement) throws(ClusterError) -> String {
        if let name = prepared[statement.sql] { return name }
        let name = "npfs_\(prepared.count)"
        let types = statement.parameters.map { $0?.typeOID ?? 0 }
        guard types.withUnsafeBufferPointer({ PQsendPrepare(connection, name, statement.sql, Int32(types.count), $0.baseAddress) }) == 1 else {
            throw failure
        }
        _ = try lastResult()
        prepared[statement.sql] = name
        return name
    }

    /// Runs several statements given as text (no parameters), such as a schema.
    package func executeScript(_ sql: String) throws(ClusterError) {
        guard PQsendQuery(connection, sql) == 1 else { throw failure }
        _ = try lastResult()
    }

    /// A statement's result as rows, or (freed) the error it holds; a missing result is the
    /// connection's error.
    private func succeeded(_ result: OpaquePointer?) throws(ClusterError) -> Rows {
        guard let result else { throw failure }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = Connection.message(PQresultErrorMessage(result), hiding: secret)
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            PQclear(result)
            throw ClusterError(message.isEmpty ? "PostgreSQL: query failed" : message, sqlState: state)
        }
        return Rows(result)
    }

    /// The connection's last error, as one line.
    private var failure: ClusterError { ClusterError(Connection.message(PQerrorMessage(connection), hiding: secret)) }

    /// Notifications (`NOTIFY channel, payload`) received so far, reading what the socket
    /// holds without waiting.
    package func notifications() throws(ClusterError) -> [(channel: String, payload: String)] {
        guard PQconsumeInput(connection) == 1 else { throw failure }
        var received: [(String, String)] = []
        while let notice = PQnotifies(connection) {
            received.append((String(cString: notice.pointee.relname), String(cString: notice.pointee.extra)))
            PQfreemem(notice)
        }
        return received
    }

    /// Waits up to `timeout` seconds for the socket to have something to read; false on timeout.
    package func waitReadable(timeout: Double) -> Bool {
        var entry = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&entry, 1, Int32(max(0, min(timeout, 3600)) * 1000))
        return ready > 0
    }

    /// libpq's message, on one line, with a password the user wrote replaced by `***`.
    private static func message(_ raw: UnsafePointer<CChar>?, hiding secret: String?) -> String {
        guard let raw else { return "" }
        let text = String(cString: raw)
            .split(whereSeparator: \.isNewline)
            .map { String($0).trimmingWhitespace() }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
        guard let secret, !secret.isEmpty else { return text }
        return text.split(separator: secret, omittingEmptySubsequences: false).joined(separator: "***")
    }

    /// `strings` as a NULL-terminated array of C strings, as libpq's keyword lists are.
    private static func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// libpq's reading of a connection string (URL or `key=value` words): its keywords
    /// and values, or its complaint.
    package static func parse(_ conninfo: String) -> Result<[String: String], ClusterError> {
        var complaint: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &complaint) else {
            let message = complaint.map { String(cString: $0) } ?? "out of memory"
            if let complaint { PQfreemem(complaint) }
            return .failure(ClusterError(message.split(whereSeparator: \.isNewline).first.map(String.init) ?? message))
        }
        defer { PQconninfoFree(options) }
        var parsed: [String: String] = [:]
        var entry = options
        while let keyword = entry.pointee.keyword {
            if let value = entry.pointee.val { parsed[String(cString: keyword)] = String(cString: value) }
            entry += 1
        }
        return .success(parsed)
    }

    /// Parameters in libpq's binary form: type OIDs, values, lengths and formats.
    private static func withParameters<T>(_ parameters: [SQLValue?],
                                          _ body: (UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?,
                                                   UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> T) -> T {
        let encoded = parameters.map { $0?.binary }
        let types = parameters.map { $0?.typeOID ?? 0 }
        let lengths = encoded.map { Int32($0?.count ?? 0) }
        let formats = [Int32](repeating: 1, count: parameters.count)
        let buffers: [UnsafeMutableRawPointer?] = encoded.map { bytes in
            guard let bytes else { return nil }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(buffer), byteCount: $0.count) }
            return buffer
        }
        defer { buffers.forEach { $0?.deallocate() } }
        let values: [UnsafePointer<CChar>?] = buffers.map { $0.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }
        return types.withUnsafeBufferPointer { t in
            values.withUnsafeBufferPointer { v in
                lengths.withUnsafeBufferPointer { l in
                    formats.withUnsafeBufferPointer { f in body(t.baseAddress, v.baseAddress, l.baseAddress, f.baseAddress) }
                }
            }
        }
    }
}

/// The rows a statement returned, in binary form; freed with the value.
package final class Rows: @unchecked Sendable {
    private let result: OpaquePointer

    fileprivate init(_ result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }

    package var count: Int { Int(PQntuples(result)) }
    /// Rows a command touched (`UPDATE`, `DELETE`, `INSERT`).
    package var affected: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }

    package func isNull(_ row: Int, _ column: Int) -> Bool {
        guard row < count, column < Int(PQnfields(result)) else { return true }
        return PQgetisnull(result, Int32(row), Int32(column)) == 1
    }

    /// A column's bytes (bytea, or text's UTF-8); nil for NULL.
    package func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard !isNull(row, column), let value = PQgetvalue(result, Int32(row), Int32(column)) else { return nil }
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        return [UInt8](UnsafeRawBufferPointer(start: value, count: length))
    }

    package func text(_ row: Int, _ column: Int) -> String? {
        bytes(row, column).map { String(decoding: $0, as: UTF8.self) }
    }

    /// An integer column (int2, int4 or int8, by its length).
    package func integer(_ row: Int, _ column: Int) -> Int64? {
        guard let bytes = bytes(row, column), [2, 4, 8].contains(bytes.count) else { return nil }
        var value: Int64 = bytes[0] & 0x80 != 0 ? -1 : 0
        for byte in bytes { value = (value << 8) | Int64(byte) }
        return value
    }

    package func bool(_ row: Int, _ column: Int) -> Bool? {
        bytes(row, column).flatMap { $0.count == 1 ? $0[0] != 0 : nil }
    }
}

/// A statement and its parameters ($1, $2, ...), for `pipeline`.
package struct Statement: Sendable {
    package let sql: String
    package let parameters: [SQLValue?]
    package init(_ sql: String, _ parameters: [SQLValue?] = []) {
        self.sql = sql
        self.parameters = parameters
    }
}

/// A statement parameter, sent in PostgreSQL's binary form.
package enum SQLValue: Sendable {
    case int64(Int64)
    case int32(Int32)
    case text(String)
    case bytes([UInt8])
    case bool(Bool)
    case double(Double)
    case int32Array([Int32])
    case int64Array([Int64])
    case bytesArray([[UInt8]])

    var typeOID: Oid {
        switch self {
        case .int64: 20
        case .int32: 23
        case .text: 25
        case .bytes: 17
        case .bool: 16
        case .double: 701
        case .int32Array: 1007
        case .int64Array: 1016
        case .bytesArray: 1001
        }
    }

    var binary: [UInt8] {
        switch self {
        case .int64(let value): withUnsafeBytes(of: value.bigEndian, Array.init)
        case .int32(let value): withUnsafeBytes(of: value.bigEndian, Array.init)
        case .text(let value): Array(value.utf8)
        case .bytes(let value): value
        case .bool(let value): [value ? 1 : 0]
        case .double(let value): withUnsafeBytes(of: value.bitPattern.bigEndian, Array.init)
        case .int32Array(let values): SQLValue.array(of: 23, values.map { SQLValue.int32($0).binary })
        case .int64Array(let values): SQLValue.array(of: 20, values.map { SQLValue.int64($0).binary })
        case .bytesArray(let values): SQLValue.array(of: 17, values)
        }
    }

    /// A one-dimensional array in PostgreSQL's binary form: dimensions, no NULLs, the
    /// element type, the length and lower bound, then each element with its length.
    private static func array(of element: Oid, _ items: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        func put(_ value: Int32) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
        put(1)
        put(0)
        put(Int32(bitPattern: element))
        put(Int32(items.count))
        put(1)
        for item in items {
            put(Int32(item.count))
            bytes.append(contentsOf: item)
        }
        return bytes
    }
}
