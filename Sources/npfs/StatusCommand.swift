import ArgumentParser
import CLinux
import Foundation
import NpfsClient
import PipeCore
import SystemPackage

/// `npfs status MOUNTPOINT [--json]`: every live pipe's settings and figures.
///
/// Reads the mount root's status pages, 64 KiB of pipes a request (10,000 pipes take a few
/// dozen): it opens no pipe, so it creates, holds and disturbs none. Names are bytes; those
/// that are not printable UTF-8 show their other bytes as `\xNN` (and a backslash as
/// `\\`), in both forms, and columns are aligned by the width a terminal gives each character.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the live pipes of an npfs mount: settings, readers, writers, bytes."
    )

    @Argument(help: "The mount point.", completion: Completions.mountPoints)
    var mountpoint: String

    @Flag(help: "Print JSON for scripts: the usage and every pipe, with its clients.")
    var json = false

    @Flag(help: "Show each pipe's clients under it: pid, command, user, what it opened, what it waits for, since when.")
    var clients = false

    @Flag(help: "Redraw every SECONDS (default 1) with bytes in and out per second, busiest pipes first; q or Ctrl-C ends it. Not on a terminal: a table per interval. Also --watch SECONDS MOUNTPOINT and --watch=SECONDS.")
    var watch = false

    @Argument(help: ArgumentHelp("With --watch: the interval in seconds (decimal).", valueName: "SECONDS"))
    var interval: String?

    /// The mount point and the interval, in either order (`--watch 0.5 /mnt/example`, as
    /// `watch -n` taught, or `/mnt/example --watch 0.5`): the interval is the operand that
    /// is a number and, if both are, not a directory.
    func operands() throws -> (mountpoint: String, interval: Double?) {
        guard let interval else { return (mountpoint, nil) }
        guard watch else { throw CommandError("an interval is for --watch: npfs status MOUNTPOINT --watch \(interval)") }
        var isDirectory: ObjCBool = false
        let first = Double(mountpoint), second = Double(interval)
        let swapped = first != nil && (second == nil
            || !FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory) || !isDirectory.boolValue)
        let (path, text) = swapped ? (interval, mountpoint) : (mountpoint, interval)
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0.1, seconds <= 86_400 else {
            throw CommandError("the interval must be from 0.1 to 86400 seconds, not '\(text)'")
        }
        return (path, seconds)
    }

    func validate() throws {
        _ = try operands()
        if watch && json { throw CommandError("--watch and --json do not go together") }
    }

    /// `--json`: the mount's usage against its limits, and every live pipe.
    struct Report: Encodable {
        var usage: [String: Int]
        /// A cluster mount's cluster (see `NpfsMount.cluster`), left out on a local mount.
        var cluster: [String: String]?
        /// How requests travel (see `NpfsMount.transport`).
        var transport: [String: String]?
        var pipes: [PipeStatus]
    }

    /// A pipe as the table and `--json` show it. The JSON object has `name`, every
    /// attribute of `PipeAttribute` (so a new one cannot be left out), `clients` and
    /// `more_clients`.
    struct PipeStatus: Encodable {
        var name: String
        var mode: String
        var overflow: String
        var framing: String
        var delivery: String
        var capacity: Int
        var buffered: Int
        var readers: Int
        var writers: Int
        var bytesWritten: Int
        var bytesRead: Int
        var dropped: Int

        var openTimeout: Double
        var clients: [Client]
        /// Opens not listed in `clients` (a record holds the first 16 KiB of them).
        var moreClients: Int
        /// The name's bytes, for sorting as `ls` does.
        var sortKey: [UInt8] = []

        /// Every attribute's value as the record gives it.
        var values: [String: String] = [:]

        private struct Key: CodingKey {
            let stringValue: String
            init(_ name: String) { stringValue = name }
            init?(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(name, forKey: Key("name"))
            for attribute in PipeAttribute.allCases {
                let text = values[attribute.rawValue] ?? ""
                let key = Key(attribute.rawValue)
                switch attribute.kind {
                case .count: try container.encode(Int(text) ?? 0, forKey: key)
                case .seconds: try container.encode(Double(text) ?? 0, forKey: key)
                case .word: try container.encode(text, forKey: key)
                }
            }
            try container.encode(clients, forKey: Key("clients"))
            try container.encode(moreClients, forKey: Key("more_clients"))
        }

        init(_ record: StatusPage.Record) {
            func text(_ attribute: PipeAttribute) -> String { record.values[attribute.rawValue] ?? "" }
            func number(_ attribute: PipeAttribute) -> Int { Int(text(attribute)) ?? 0 }
            name = PipeNameText.display(record.name)
            sortKey = record.name
            values = record.values
            mode = text(.mode)
            overflow = text(.overflow)
            framing = text(.framing)
            delivery = text(.delivery)
            capacity = number(.capacity)
            buffered = number(.buffered)
            readers = number(.readers)
            writers = number(.writers)
            bytesWritten = number(.bytesWritten)
            bytesRead = number(.bytesRead)
            dropped = number(.dropped)
            openTimeout = Double(text(.openTimeout)) ?? 0
            clients = record.clients.compactMap(PipeClient.init(line:)).map(Client.init)
            moreClients = record.moreClients
        }
    }

    /// One open of a pipe: who made it, for what, and what it waits for (`null`: nothing).
    struct Client: Encodable {
        var pid: Int32
        var uid: UInt32
        var command: String
        var access: String
        var waiting: String?
        /// When the open was made, in seconds since the epoch.
        var since: Double
        /// Broadcast delivery: bytes this reader lost, left behind by a ring-mode pipe.
        var lost: UInt64?
        /// A cluster's pipe: the host the open was made on.
        var host: String?

        init(_ client: PipeClient) {
            pid = client.identity.pid
            uid = client.identity.uid
            command = client.identity.command
            access = client.access.name
            waiting = client.waiting?.rawValue
            since = client.since.secondsSinceEpoch
            lost = client.lost
            host = client.host
        }

        /// `4242 cat (uid 1000) reads, waiting for a writer, for 12 s` (`... (uid 1000) on
        /// host b reads ...` on a cluster mount).
        func line(now: Double) -> String {
            let what: String
            switch waiting {
            case "open": what = access == "write" ? ", waiting for a reader" : ", waiting for a writer"
            case "read": what = ", waiting for data"
            case "write": what = ", waiting for room"
            default: what = ""
            }
            let verb = ["read": "reads", "write": "writes", "read-write": "reads and writes"][access] ?? access
            let loss = lost.map { $0 > 0 ? ", lost \($0) bytes" : "" } ?? ""
            let place = host.map { " on host \($0)" } ?? ""
            return "\(pid) \(command.isEmpty ? "?" : command) (uid \(uid))\(place) \(verb)\(what)\(loss), for \(age(now - since))"
        }
    }

    func run() throws {
        let (mountpoint, interval) = try operands()
        let mount = try NpfsMount.checked(absolutePath(mountpoint))
        if watch {
            throw ExitCode(try StatusWatch(mount: mount, interval: interval ?? 1, clients: clients).run())
        }
        let records: [StatusPage.Record]
        do { records = try mount.statusRecords() } catch { throw CommandError("cannot read the status of \(mount.path): \(error)") }
        let pipes = records.map(PipeStatus.init).sorted { $0.sortKey.lexicographicallyPrecedes($1.sortKey) }
        let usage = (try? mount.usage()) ?? [:]
        let cluster = mount.cluster()
        let transport = mount.transport()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(Report(usage: usage, cluster: cluster, transport: transport, pipes: pipes)), as: UTF8.self))
        } else {
            if let cluster { print(Self.clusterLine(cluster)) }
            print(Self.summary(usage) + (transport.map { "; " + Self.transportText($0) } ?? ""))
            print(table(pipes, clients: clients), terminator: "")
        }
    }

    /// One line of a cluster mount's cluster: its server and space, this host, the hosts
    /// seen, and whether it is connected.
    static func clusterLine(_ cluster: [String: String]) -> String {
        let state: String
        if let since = cluster["disconnected_since"].flatMap(Int.init) {
            var time = time_t(since), parts = tm()
            localtime_r(&time, &parts)
            var text = [CChar](repeating: 0, count: 32)
            strftime(&text, text.count, "%Y-%m-%d %H:%M:%S", &parts)
            state = "disconnected since \(String(cString: text))"
        } else {
            state = "connected"
        }
        return "cluster: \(cluster["server"] ?? "?"), space \(cluster["space"] ?? "?"), host \(cluster["host"] ?? "?")"
            + " (id \(cluster["id"] ?? "?")), \(cluster["hosts"] ?? "?") hosts, \(state)"
    }

    /// How requests travel: over io_uring (its queues, the memory their buffers map, how
    /// long a queue's thread polls before it sleeps: `io_uring_spin`),
    /// or over /dev/fuse and why (`./mount.sh --io-uring` lets the kernel offer io_uring).
    static func transportText(_ transport: [String: String]) -> String {
        if transport["transport"] == "io_uring" {
            let bytes = transport["buffer_bytes"].flatMap(Int.init) ?? 0
            return "requests over io_uring (\(transport["queues"] ?? "?") queues, \(transport["entries"] ?? "?") entries,"
                + " \(formatSize(bytes)) of buffers mapped"
                + (transport["spin_us"].flatMap(Int.init).map { $0 > 0 ? ", polling \($0) µs)" : ", no polling)" } ?? ")")
        }
        switch transport["io_uring"] {
        case "not_offered": return "requests over /dev/fuse (the kernel does not offer io_uring)"
        case "off": return "requests over /dev/fuse (io_uring=off)"
        case "refused": return "requests over /dev/fuse (io_uring could not be set up)"
        default: return "requests over /dev/fuse"
        }
    }

    /// One line of the mount's usage against each limit.
    static func summary(_ usage: [String: Int]) -> String {
        func pair(_ used: String, _ limit: String, size: Bool) -> String {
            let (a, b) = (usage[used] ?? 0, usage[limit] ?? 0)
            return size ? "\(formatSize(a))/\(formatSize(b))" : "\(a)/\(b)"
        }
        return "pipes \(pair("pipes", "max_pipes", size: false)) (yours \(pair("user_pipes", "user_max_pipes", size: false))),"
            + " memory \(pair("memory", "max_memory", size: true)) (yours \(pair("user_memory", "user_max_memory", size: true))),"
            + " waiting writes \(formatSize(usage["waiting"] ?? 0)) (yours \(pair("user_waiting", "user_max_waiting", size: true))),"
            + " idle names \(pair("idle_names", "max_idle_names", size: false)), buffers \(formatSize(usage["allocated"] ?? 0))"
    }

    /// Columns aligned for people: text left, numbers right.
    private func table(_ pipes: [PipeStatus], clients: Bool) -> String {
        let columns = StatusColumn.allCases
        let header = ["NAME"] + columns.map(\.header)
        let rows = pipes.map { pipe in [pipe.name] + columns.map { $0.cell(pipe) } }
        let lines = alignColumns([header] + rows, leftAligned: StatusColumn.textColumns(columns))
        guard clients else { return lines.joined() }
        let now = Timestamp.now().secondsSinceEpoch
        return lines[0] + zip(pipes, lines.dropFirst()).map { pipe, line in
            line + pipe.clientLines(now: now)
        }.joined()
    }
}

extension StatusCommand.PipeStatus {
    /// `fifo`, or `ring/drop` and `ring/overwrite`.
    var modeText: String { mode == "ring" ? "ring/\(overflow)" : mode }

    /// A line per client, indented, and one for those not listed.
    func clientLines(now: Double) -> String {
        clients.map { "  " + $0.line(now: now) + "\n" }.joined() + (moreClients > 0 ? "  and \(moreClients) more\n" : "")
    }
}

/// Rows as lines with aligned columns: those in `leftAligned` padded on the right, the
/// others (numbers) on the left; widths as a terminal shows them.
func alignColumns(_ rows: [[String]], leftAligned: Set<Int>) -> [String] {
    let count = rows.map(\.count).max() ?? 0
    let widths = (0..<count).map { column in rows.map { column < $0.count ? displayWidth($0[column]) : 0 }.max() ?? 0 }
    return rows.map { cells in
        cells.enumerated().map { column, cell in
            let pad = String(repeating: " ", count: max(0, widths[column] - displayWidth(cell)))
            return leftAligned.contains(column) ? cell + pad : pad + cell
        }.joined(separator: "  ").trimmingTrailingSpaces() + "\n"
    }
}

extension NpfsMount {
    /// The mount at `path`, after checking that npfs serves it (one-line error otherwise).
    static func checked(_ path: String) throws -> NpfsMount {
        let mount = NpfsMount(path: path)
        do {
            _ = try mount.daemonProcess()
        } catch {
            throw CommandError("\(path) is not an npfs mount: \(error)")
        }
        return mount
    }
}

/// The columns a terminal gives `text`: two for a wide character (CJK, most emoji), none
/// for a combining mark (wcwidth, in a UTF-8 locale).
func displayWidth(_ text: String) -> Int {
    _ = utf8Locale
    return text.unicodeScalars.reduce(0) { $0 + max(0, Int(npfs_wcwidth($1.value))) }
}

/// wcwidth knows characters beyond ASCII only in a UTF-8 locale.
private let utf8Locale: Bool = setlocale(LC_CTYPE, "C.UTF-8") != nil

/// A duration as people read it: 42 s, 3 min, 2 h, 5 d.
func age(_ seconds: Double) -> String {
    let whole = max(0, Int(seconds))
    if whole < 120 { return "\(whole) s" }
    if whole < 7200 { return "\(whole / 60) min" }
    if whole < 172_800 { return "\(whole / 3600) h" }
    return "\(whole / 86_400) d"
}

/// Bytes as people read them: 65536 is 64K, 1073741824 is 1G; other counts stay exact.
func formatSize(_ bytes: Int) -> String {
    for (unit, size) in [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] where bytes >= size && bytes % size == 0 {
        return "\(bytes / size)\(unit)"
    }
    return String(bytes)
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}
