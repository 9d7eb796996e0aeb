/// Fields of a `/proc/TID/status` text.
package enum ProcStatus {
    /// The value of the line `name:`, without the blanks around it; nil if there is none.
    package static func field(_ name: String, in status: String) -> Substring? {
        let prefix = name + ":"
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        var value = line.dropFirst(prefix.count).drop { $0 == " " || $0 == "\t" }
        while value.last == " " || value.last == "\t" { value = value.dropLast() }
        return value
    }

    /// The ids of the `Groups:` line (empty if there is none).
    package static func groups(in status: String) -> [UInt32] {
        (field("Groups", in: status) ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
    }
}
