import Glibc

/// A terminal's size, and how `npfs status --watch` fits it as `top` does: the usage line,
/// the header and the last line are kept, pipes are cut from the bottom with "+N more" in
/// their place, names longer than their column are cut with an ellipsis, and no line is
/// wider than the screen (a wrapped line would scroll the top away).
struct Screen {
    let rows: Int
    let columns: Int

    /// The size of the terminal on standard output, or nil if it has none.
    static func ofStandardOutput() -> Screen? {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return Screen(rows: Int(size.ws_row), columns: Int(size.ws_col))
    }

    /// The widest a name may be so that a row whose other cells take `others` columns fits;
    /// at least 8.
    func nameWidth(others: Int) -> Int { max(8, columns - others) }

    /// `top` lines, then as many whole entries (a pipe and its client lines) as fit, then
    /// "+N more" if some did not, then `last`: at most `rows` lines, none wider than the
    /// screen, and no newline after the last (it would scroll).
    func fit(top: [String], entries: [[String]], last: String) -> String {
        var room = rows - top.count - 1
        var shown: [String] = []
        for (index, entry) in entries.enumerated() {
            let left = entries.count - index - 1
            // The last entry may take the line "+N more" would need.
            guard entry.count <= room - (left > 0 ? 1 : 0) else {
                shown.append("+\(entries.count - index) more")
                break
            }
            shown += entry
            room -= entry.count
        }
        return (top + shown + [last]).prefix(max(rows, 1)).map { Screen.cut($0, to: columns) }.joined(separator: "\n")
    }

    /// `text` cut to `width` columns, its end replaced by "…" if it was longer.
    static func cut(_ text: String, to width: Int) -> String {
        guard displayWidth(text) > width else { return text }
        var kept = "", used = 0
        for character in text {
            let size = displayWidth(String(character))
            if used + size > width - 1 { break }
            kept.append(character)
            used += size
        }
        return kept + "…"
    }
}
