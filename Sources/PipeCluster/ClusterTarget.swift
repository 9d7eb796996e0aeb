/// Where a cluster mount's pipes live: the `cluster=` option's value, a libpq connection
/// string (`postgres://`/`postgresql://` URL, or `key=value` words such as
/// `service=NAME`), checked by libpq itself, and the `cluster_passfile`.
package struct ClusterTarget: Sendable, Equatable {
    /// As the user wrote it (it may hold a password: never print it, use `redacted`).
    package let conninfo: String
    /// `cluster_passfile`: libpq's `passfile`, a `.pgpass`-style file.
    package let passfile: String?
    /// A password written in the connection string, if any.
    package let password: String?
    /// The connection string without its password, for messages and `npfs status`.
    package let redacted: String

    /// Checks `conninfo` as libpq reads it: one line naming what is wrong otherwise.
    package init(_ conninfo: String, passfile: String? = nil) throws(ClusterError) {
        let lower = conninfo.lowercased()
        let isURL = lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")
        guard isURL || conninfo.contains("=") else {
            throw ClusterError("bad cluster '\(conninfo)': give a postgres:// or postgresql:// URL, or libpq's key=value words such as service=NAME")
        }
        let parsed: [String: String]
        switch Connection.parse(conninfo) {
        case .success(let words): parsed = words
        case .failure(let error):
            throw ClusterError("bad cluster connection string: \(error.description)")
        }
        self.conninfo = conninfo
        self.passfile = passfile
        password = parsed["password"].flatMap { $0.isEmpty ? nil : $0 }
        redacted = ClusterTarget.redact(conninfo, isURL: isURL, password: password)
    }

    /// The connection string with a password replaced by `***` (a URL's `user:secret@`, or
    /// a `password=` word).
    static func redact(_ conninfo: String, isURL: Bool, password: String?) -> String {
        guard let password else { return conninfo }
        if isURL, let scheme = conninfo.firstRange(of: "://") {
            // userinfo ends at the last '@' before the path; a password may hold '@' escaped only.
            let rest = conninfo[scheme.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                return String(conninfo[..<colon]) + ":***" + String(conninfo[at...])
            }
        }
        return conninfo.split(separator: password, omittingEmptySubsequences: false).joined(separator: "***")
    }
}

/// A cluster failure, as one line for the user; the SQLSTATE when the server gave one.
package struct ClusterError: Error, CustomStringConvertible, Equatable {
    package let description: String
    package let sqlState: String?
    /// Nothing was committed and the connection was lost: worth one more try on a new one.
    package var retryable = false
    package init(_ description: String, sqlState: String? = nil) {
        self.description = description
        self.sqlState = sqlState
    }
}
