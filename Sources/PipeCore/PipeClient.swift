/// The process behind an open, as the kernel names it when the open is made.
package struct ClientIdentity: Sendable, Equatable {
    /// The process (thread group) id.
    package var pid: Int32
    package var uid: UInt32
    /// Its command name (`/proc/PID/comm`), read once at the open.
    package var command: String

    package init(pid: Int32, uid: UInt32, command: String) {
        self.pid = pid
        self.uid = uid
        self.command = command
    }
}

/// One open of a pipe as `npfs status --clients` and `user.npfs.clients` show it.
package struct PipeClient: Sendable, Equatable {
    package var identity: ClientIdentity
    package var access: AccessMode
    /// When the open was made.
    package var since: Timestamp
    /// What the open waits for now: its partner (`open`), data (`read`), room (`write`).
    package var waiting: Waiting?
    /// Broadcast delivery: bytes this reader lost, left behind by a ring-mode pipe.
    package var lost: UInt64?
    /// A cluster's pipe: the host (`-o host=`) the open was made on.
    package var host: String?

    package enum Waiting: String, Sendable, CaseIterable { case open, read, write }

    package init(identity: ClientIdentity, access: AccessMode, since: Timestamp, waiting: Waiting?, lost: UInt64? = nil,
                 host: String? = nil) {
        self.identity = identity
        self.access = access
        self.since = since
        self.waiting = waiting
        self.lost = lost
        self.host = host
    }

    /// One line, `KEY=VALUE` separated by spaces, the command last (it may hold spaces):
    /// `pid=4242 uid=1000 access=read waiting=open since=1764111001.250 command=cat`
    /// (with `host=NAME` before `since` for a cluster's pipe; a host name has no space).
    package var line: String {
        let fraction = String(since.nanoseconds / 1_000_000)
        let millis = String(repeating: "0", count: max(0, 3 - fraction.count)) + fraction
        return "pid=\(identity.pid) uid=\(identity.uid) access=\(access.name) waiting=\(waiting?.rawValue ?? "no")"
            + (lost.map { " lost=\($0)" } ?? "") + (host.map { " host=\($0)" } ?? "") + " since=\(since.seconds).\(millis) command=\(identity.command)"
    }

    /// Parses `line`; nil if it is not one.
    package init?(line: String) {
        guard let commandRange = line.firstRange(of: " command=") else { return nil }
        var fields: [String: String] = [:]
        for field in line[..<commandRange.lowerBound].split(separator: " ") {
            let parts = field.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let pid = fields["pid"].flatMap({ Int32($0) }), let uid = fields["uid"].flatMap({ UInt32($0) }),
              let access = fields["access"].flatMap(AccessMode.init(name:)), let since = fields["since"] else { return nil }
        let parts = since.split(separator: ".")
        guard let seconds = parts.first.flatMap({ Int($0) }) else { return nil }
        let millis = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        let waiting = fields["waiting"] == "no" ? nil : fields["waiting"].flatMap(Waiting.init(rawValue:))
        self.init(identity: ClientIdentity(pid: pid, uid: uid, command: String(line[commandRange.upperBound...])),
                  access: access, since: Timestamp(seconds: seconds, nanoseconds: millis * 1_000_000), waiting: waiting,
                  lost: fields["lost"].flatMap { UInt64($0) }, host: fields["host"])
    }
}

extension AccessMode {
    /// `read`, `write` or `read-write`.
    package var name: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .readWrite: "read-write"
        }
    }

    package init?(name: String) {
        switch name {
        case "read": self = .read
        case "write": self = .write
        case "read-write": self = .readWrite
        default: return nil
        }
    }
}
