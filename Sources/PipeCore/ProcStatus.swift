/// Fields of a `/proc/TID/status` text.
package enum ProcStatus {
    /// The value of the line `name:`, without the blanks around it; nil if there is none.
    /// Scans the text's bytes (it is read on every open: splitting it into `Character`s
    /// cost a million instructions).
    package static func field(_ name: String, in status: String) -> Substring? {
        let key = Array((name + ":").utf8)
        let bytes = status.utf8
        var line = bytes.startIndex
        while line < bytes.endIndex {
            let end = bytes[line...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
            if bytes[line..<end].starts(with: key) {
                let blank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                var start = bytes.index(line, offsetBy: key.count)
                while start < end, blank(bytes[start]) { start = bytes.index(after: start) }
                var stop = end
                while stop > start, blank(bytes[bytes.index(before: stop)]) { stop = bytes.index(before: stop) }
                return status[start..<stop]
            }
            line = end < bytes.endIndex ? bytes.index(after: end) : end
        }
        return nil
    }

    /// The ids of the `Groups:` line (empty if there is none).
    package static func groups(in status: String) -> [UInt32] {
        (field("Groups", in: status) ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
    }
}
