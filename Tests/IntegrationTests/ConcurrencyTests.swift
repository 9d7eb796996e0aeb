import CLinux
import Foundation
import Glibc
import Testing

/// Issue 7: requests are served on several threads, and what a kernel FIFO promises about
/// order still holds.
@Suite struct ConcurrencyTests {
    /// close() queues its RELEASE before it returns: the next poll and non-blocking read of
    /// the pipe, whichever thread takes them, must see that the last writer is gone.
    @Test func aCloseIsSeenByTheNextPollAndReadWhateverThreadTakesThem() throws {
        try TestMount.with(options: ["threads=8"]) { mount in
            let misses = try Self.closesSeen(mount.path("P"), rounds: 400)
            #expect(misses.isEmpty, "a kernel FIFO shows POLLIN|POLLHUP, then end of file: \(misses.count) misses, \(misses.prefix(5))")
        }
    }

    /// The same, with the close made on one CPU and the poll and reads on another: over
    /// io_uring the RELEASE and the POLL then arrive on different queues (the kernel queues
    /// a request on its caller's CPU), and the POLL must still not overtake the RELEASE.
    @Test func aCloseOnOneCPUIsSeenByAPollOnAnother() throws {
        guard npfs_cpu_allowed(0) != 0 && npfs_cpu_allowed(1) != 0 else { return }
        try TestMount.with { mount in
            defer { _ = npfs_unpin_thread() }
            let misses = try Self.closesSeen(mount.path("P"), rounds: 400, closingOn: 1, otherwiseOn: 0)
            #expect(misses.isEmpty, "a kernel FIFO shows POLLIN|POLLHUP, then end of file: \(misses.count) misses, \(misses.prefix(5))")
        }
    }

    /// `rounds` of: open a reader and a writer, write a byte, close the writer (on CPU
    /// `closingOn`, the rest on `otherwiseOn`, if given), poll, read the byte, read end of
    /// file. Returns the rounds where the poll or the last read missed the close.
    /// O_CLOEXEC: a child another test spawns meanwhile must not hold the writer open.
    static func closesSeen(_ path: String, rounds: Int, closingOn: Int32? = nil, otherwiseOn: Int32? = nil) throws -> [String] {
        var misses: [String] = []
        for round in 0..<rounds {
            if let otherwiseOn { _ = npfs_pin_thread(otherwiseOn) }
            let reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            let writer = open(path, O_WRONLY | O_CLOEXEC)
            guard reader >= 0, writer >= 0 else { throw TestFailure("open failed: errno \(errno)") }
            var byte: UInt8 = 7
            #expect(write(writer, &byte, 1) == 1)
            if let closingOn { _ = npfs_pin_thread(closingOn) }
            close(writer)
            if let otherwiseOn { _ = npfs_pin_thread(otherwiseOn) }
            var entry = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, 0)
            if entry.revents != Int16(POLLIN | POLLHUP) { misses.append("round \(round): poll revents \(entry.revents)") }
            #expect(read(reader, &byte, 1) == 1)
            let end = read(reader, &byte, 1)
            if end != 0 { misses.append("round \(round): read after the data returned \(end), errno \(errno)") }
            close(reader)
        }
        return misses
    }

    /// Eight writers of 512-byte records at once, one reader, on eight threads: every record
    /// arrives whole (a write of at most PIPE_BUF is atomic), once, and in each writer's order.
    @Test func eightWritersAtOnceKeepTheirRecordsWholeAndInOrder() throws {
        try TestMount.with(options: ["threads=8"]) { mount in
            let path = mount.path("P")
            let writers = 8, records = 2000, size = 512
            let reader = open(path, O_RDONLY | O_NONBLOCK)
            guard reader >= 0 else { throw TestFailure("open failed: errno \(errno)") }
            _ = fcntl(reader, F_SETFL, 0)
            let done = DispatchGroup()
            for writer in 0..<writers {
                let fd = open(path, O_WRONLY)
                guard fd >= 0 else { throw TestFailure("open failed: errno \(errno)") }
                DispatchQueue.global().async(group: done) {
                    defer { close(fd) }
                    for sequence in 0..<records {
                        var record = [UInt8](repeating: UInt8(writer), count: size)
                        withUnsafeBytes(of: UInt32(sequence).littleEndian) { record.replaceSubrange(1..<5, with: $0) }
                        guard write(fd, record, size) == size else { return }
                    }
                }
            }
            var next = [Int](repeating: 0, count: writers)
            var problems: [String] = []
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                var entry = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 10_000) > 0 else { problems.append("no data for 10 s"); break }
                let got = read(reader, &buffer, buffer.count)
                if got <= 0 { break }
                pending += buffer[..<got]
                while pending.count >= size {
                    let record = Array(pending.prefix(size))
                    pending.removeFirst(size)
                    let writer = Int(record[0])
                    let sequence = Int(record[1..<5].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
                    if writer >= writers || record[5...].contains(where: { $0 != record[0] }) {
                        problems.append("a torn or interleaved record")
                    } else if sequence != next[writer] {
                        problems.append("writer \(writer): record \(sequence) where \(next[writer]) was due")
                    } else {
                        next[writer] += 1
                    }
                }
            }
            close(reader)
            done.wait()
            #expect(problems.isEmpty, "\(problems.prefix(5))")
            #expect(next == [Int](repeating: records, count: writers) && pending.isEmpty)
        }
    }
}
