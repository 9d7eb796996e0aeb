/// Fields of a `/proc/TID/status` text.
public enum ProcStatus {
    /// The ids of the `Groups:` line (empty if there is none).
    public static func groups(in status: String) -> [UInt32] {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) else { return [] }
        return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
    }
}
