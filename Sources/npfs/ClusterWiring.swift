import Glibc
import PipeCluster
import PipeFuse

/// How a cluster mount's options become the cluster executor's settings, and how a password
/// written in the connection string is kept out of the command line that `ps` shows.
extension MountOptions.ClusterOptions {
    /// The environment variable the daemon gets the connection string from when it holds
    /// a password (readable by its owner and root only, as libpq's PGPASSWORD).
    static let environmentKey = "NPFS_CLUSTER_CONNECTION"

    /// Checked settings (the connection string as libpq reads it, the schema's name, the
    /// passfile's mode); one line naming the problem otherwise.
    func settings() throws -> ClusterSettings {
        var connection = self.connection
        if let given = getenv(Self.environmentKey).map({ String(cString: $0) }) { connection = given }
        if let passfile {
            var info = stat()
            guard stat(passfile, &info) == 0 else {
                throw CommandError("cluster_passfile \(passfile): \(String(cString: strerror(errno)))")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw CommandError("cluster_passfile \(passfile) may be read by others: make it mode 0600 (chmod 600 \(passfile))")
            }
        }
        do {
            _ = try Schema(schema)
            let target = try ClusterTarget(connection, passfile: passfile)
            return ClusterSettings(target: target, space: space, hostName: host ?? Self.hostname, schema: schema, timeout: timeout)
        } catch {
            throw CommandError(error.description)
        }
    }

    static var hostname: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(cString: buffer)
    }
}

/// A password in a `cluster=` connection string, kept out of sight.
enum ClusterSecret {
    /// `-o` arguments with the connection string's password replaced by `***`, and the
    /// whole string to hand the daemon through its environment instead; nil if there is
    /// no password to hide.
    static func redacting(_ options: [String]) -> (options: [String], connection: String)? {
        var connection: String?
        let redacted = options.map { argument -> String in
            MountOptions.splitOptions(argument).map { option -> String in
                guard option.hasPrefix("cluster="), let target = try? ClusterTarget(String(option.dropFirst(8))),
                      target.password != nil else { return escape(String(option)) }
                connection = target.conninfo
                return "cluster=" + escape(target.redacted)
            }.joined(separator: ",")
        }
        return connection.map { (redacted, $0) }
    }

    private static func escape(_ option: String) -> String {
        option.replacing("\\", with: "\\\\").replacing(",", with: "\\,")
    }

    /// Overwrites, in this process's own argument memory (what /proc/PID/cmdline and `ps`
    /// show), every password written in a `cluster=` URL (`user:PASSWORD@`) or as a
    /// `password=` word with `*`.
    static func hideInCommandLine() {
        for index in 0..<Int(CommandLine.argc) {
            guard let argument = CommandLine.unsafeArgv[index] else { continue }
            let length = strlen(argument)
            let bytes = UnsafeMutableBufferPointer(start: UnsafeMutableRawPointer(argument).assumingMemoryBound(to: UInt8.self), count: length)
            for range in secretRanges(in: Array(bytes)) {
                for offset in range { bytes[offset] = UInt8(ascii: "*") }
            }
        }
    }

    /// Where passwords sit in one argument: after `scheme://user:` up to the `@` that ends
    /// the authority, and after `password=` up to a space or comma.
    static func secretRanges(in bytes: [UInt8]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.contains("cluster=") else { return [] }
        var index = 0
        while index < bytes.count {
            if bytes[index...].starts(with: Array("://".utf8)) {
                let start = index + 3
                var end = start
                while end < bytes.count, ![UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: ","), UInt8(ascii: " ")].contains(bytes[end]) { end += 1 }
                if let at = bytes[start..<end].lastIndex(of: UInt8(ascii: "@")), let colon = bytes[start..<at].firstIndex(of: UInt8(ascii: ":")) {
                    ranges.append(colon + 1..<at)
                }
                index = end
            } else if bytes[index...].starts(with: Array("password=".utf8)) {
                let start = index + 9
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: " "), bytes[end] != UInt8(ascii: ",") { end += 1 }
                ranges.append(start..<end)
                index = end
            } else {
                index += 1
            }
        }
        return ranges
    }
}
