import Glibc

/// Reading the small text files of /proc and /sys, the adapter's one way to: a whole file at once
/// (its size is not known beforehand), retried on EINTR, at most 1 MiB.
enum ProcFile {
    /// The text of the file at `path`, or nil if it cannot be read.
    static func contents(of path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return contents(of: fd)
    }

    /// The text of an open file, from its start.
    static func contents(of fd: Int32) -> String? {
        guard lseek(fd, 0, SEEK_SET) == 0 else { return nil }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)   // most are smaller: zeroing more costs more than a second read
        while text.count < 1 << 20 {
            let count = read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { break }
            text += chunk[..<count]
        }
        return String(decoding: text, as: UTF8.self)
    }
}
