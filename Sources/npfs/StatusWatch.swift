import ArgumentParser
import Glibc
import NpfsClient
import PipeCore
import Synchronization

/// `npfs status MOUNTPOINT --watch [SECONDS]`: the live pipes again every interval, with the
/// bytes written and read per second since the last look, busiest first.
///
/// On a terminal it redraws in place (the screen is cleared and drawn from the top), and
/// reads keys without waiting for Enter: `q` ends it, and so does Ctrl-C; the terminal's
/// settings are restored either way. Otherwise (a pipe, a file) it prints one table per
/// interval, each after a line with the time, until it is ended by a signal. Like every
/// status read, it creates, holds and disturbs no pipe.
struct StatusWatch {
    let mount: NpfsMount
    let interval: Double
    let clients: Bool

    /// Runs until `q`, Ctrl-C or SIGTERM; returns the exit code (0, or 130 after Ctrl-C).
    func run() throws -> Int32 {
        let terminal = isatty(STDOUT_FILENO) == 1
        let keys = terminal && isatty(STDIN_FILENO) == 1 ? RawKeys() : nil
        defer { keys?.restore() }
        StatusWatch.catchSignals()
        var previous: (time: Double, totals: [UInt64: (written: Int, read: Int)])?
        if terminal { emit("\u{1B}[?25l") }   // no cursor while drawing
        defer { if terminal { emit("\u{1B}[?25h") } }
        while true {
            let now = Timestamp.now()
            let time = now.secondsSinceEpoch
            let records: [StatusPage.Record]
            do { records = try mount.statusRecords() } catch { throw CommandError("cannot read the status of \(mount.path): \(error)") }
            let pipes = records.map(StatusCommand.PipeStatus.init)
            var totals: [UInt64: (written: Int, read: Int)] = [:]
            for (record, pipe) in zip(records, pipes) { totals[record.inode] = (pipe.bytesWritten, pipe.bytesRead) }
            let rates = zip(records, pipes).map { record, pipe -> (Double, Double) in
                guard let previous, let before = previous.totals[record.inode], time > previous.time else { return (0, 0) }
                let seconds = time - previous.time
                return (Double(max(0, pipe.bytesWritten - before.written)) / seconds, Double(max(0, pipe.bytesRead - before.read)) / seconds)
            }
            previous = (time, totals)
            let screen = render(pipes, rates: rates, usage: (try? mount.usage()) ?? [:], at: now)
            emit(terminal ? "\u{1B}[H\u{1B}[2J" + screen : "== \(clock(now))\n" + screen + "\n")
            switch wait(keys) {
            case .quit: return 0
            case .interrupted: return 130
            case .terminated: return 0
            case .timeout: continue
            }
        }
    }

    /// The usage line and the table, busiest pipes (bytes per second in and out) first.
    private func render(_ pipes: [StatusCommand.PipeStatus], rates: [(Double, Double)], usage: [String: Int], at now: Timestamp) -> String {
        let order = pipes.indices.sorted { a, b in
            let (x, y) = (rates[a].0 + rates[a].1, rates[b].0 + rates[b].1)
            return x != y ? x > y : pipes[a].sortKey.lexicographicallyPrecedes(pipes[b].sortKey)
        }
        // The status table's columns, with the rates after the buffer's.
        let (before, after) = (StatusColumn.allCases.prefix { $0 != .bytesIn }, StatusColumn.allCases.drop { $0 != .bytesIn })
        let header = ["NAME"] + before.map(\.header) + ["IN/s", "OUT/s"] + after.map(\.header)
        let textColumns = StatusColumn.textColumns(Array(before))
        var rows = order.map { index -> [String] in
            let pipe = pipes[index]
            return [pipe.name] + before.map { $0.cell(pipe) } + [rate(rates[index].0), rate(rates[index].1)] + after.map { $0.cell(pipe) }
        }
        let screen = isatty(STDOUT_FILENO) == 1 ? Screen.ofStandardOutput() : nil
        if let screen {
            // Names cut to what the other columns leave of the width.
            let others = displayWidth(alignColumns([header] + rows.map { ["NAME"] + $0.dropFirst() }, leftAligned: textColumns)[0]) - 4
            let width = screen.nameWidth(others: others)
            for i in rows.indices { rows[i][0] = Screen.cut(rows[i][0], to: width) }
        }
        let lines = alignColumns([header] + rows, leftAligned: textColumns).map { String($0.dropLast()) }
        let seconds = now.secondsSinceEpoch
        let entries = zip(order, lines.dropFirst()).map { index, line in
            [line] + (clients ? pipes[index].clientLines(now: seconds).split(separator: "\n").map(String.init) : [])
        }
        let summary = StatusCommand.summary(usage)
        guard isatty(STDOUT_FILENO) == 1 else { return ([summary, lines[0]] + entries.joined()).joined(separator: "\n") + "\n" }
        let every = interval == interval.rounded() ? String(Int(interval)) : String(interval)
        let last = "every \(every) s; q or Ctrl-C ends"
        guard let screen else { return ([summary, lines[0]] + entries.joined() + [last]).joined(separator: "\n") }
        return screen.fit(top: [summary, lines[0]], entries: entries, last: last)
    }

    private enum Wake { case timeout, quit, interrupted, terminated }

    /// Waits for the interval, a key (`q` ends), or a signal.
    private func wait(_ keys: RawKeys?) -> Wake {
        let deadline = Deadline(after: interval)
        while true {
            if StatusWatch.signal.load(ordering: .relaxed) == SIGINT { return .interrupted }
            if StatusWatch.signal.load(ordering: .relaxed) != 0 { return .terminated }
            let left = deadline.remaining
            if left <= 0 { return .timeout }
            var entry = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, keys == nil ? 0 : 1, Int32(min(left, 1) * 1000) + 1)
            if ready > 0, keys != nil {
                var byte: UInt8 = 0
                let got = read(STDIN_FILENO, &byte, 1)
                if got == 0 { return .quit }   // the terminal is gone
                if got == 1 && (byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q")) { return .quit }
            }
        }
    }

    /// The last signal among SIGINT, SIGTERM and SIGHUP, or 0.
    private static let signal = Atomic<Int32>(0)

    private static func catchSignals() {
        Signals.install([SIGINT, SIGTERM, SIGHUP]) { number in StatusWatch.signal.store(number, ordering: .relaxed) }
    }

    /// Output the watcher cannot write (the terminal gone) is dropped: `q`, a signal or
    /// the terminal's hang-up ends it.
    private func emit(_ text: String) { try? StandardOutput.write(Array(text.utf8)) }

    private func rate(_ bytesPerSecond: Double) -> String {
        let value = Int(bytesPerSecond.rounded())
        for (unit, size) in [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] where value >= size {
            let scaled = Double(value) / Double(size)
            return (scaled < 10 ? String(Double(Int(scaled * 10)) / 10) : String(Int(scaled))) + unit
        }
        return String(value)
    }

    private func clock(_ time: Timestamp) -> String {
        var seconds = time_t(time.seconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : String(n) }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}

/// The terminal's input without line editing or echo, so that one key is read at once;
/// restored by `restore()`.
final class RawKeys {
    private var saved = termios()
    private var active = false

    init?() {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return nil }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else { return nil }
        active = true
    }

    func restore() {
        guard active else { return }
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved)
        active = false
    }
}
