import PipeCore

/// The columns of `npfs status`'s table (and `--watch`'s), after the name: each shows one
/// or two of a pipe's attributes. Which column shows an attribute is decided for every
/// attribute by `PipeAttribute.statusColumn`, an exhaustive switch: a new setting or figure
/// cannot be left out of the table without saying so there.
enum StatusColumn: CaseIterable {
    case mode, framing, delivery, readers, writers, buffer, bytesIn, bytesOut, dropped

    var header: String {
        switch self {
        case .mode: "MODE"
        case .framing: "FRAMING"
        case .delivery: "DELIVERY"
        case .readers: "READERS"
        case .writers: "WRITERS"
        case .buffer: "BUFFERED/CAPACITY"
        case .bytesIn: "BYTES IN"
        case .bytesOut: "BYTES OUT"
        case .dropped: "DROPPED"
        }
    }

    /// Words are aligned left, numbers right.
    var isText: Bool { [.mode, .framing, .delivery].contains(self) }

    /// The indexes of a row (the name first, then `columns`) aligned left: the name and the words.
    static func textColumns(_ columns: [StatusColumn]) -> Set<Int> {
        Set([0] + columns.indices.filter { columns[$0].isText }.map { $0 + 1 })
    }

    func cell(_ pipe: StatusCommand.PipeStatus) -> String {
        switch self {
        case .mode: pipe.modeText
        case .framing: pipe.framing
        case .delivery: pipe.delivery
        case .readers: String(pipe.readers)
        case .writers: String(pipe.writers)
        case .buffer: "\(pipe.buffered)/\(pipe.capacity)"
        case .bytesIn: String(pipe.bytesWritten)
        case .bytesOut: String(pipe.bytesRead)
        case .dropped: String(pipe.dropped)
        }
    }
}

extension PipeAttribute {
    /// The table column that shows it; nil for the one only `--json`, `npfs get` and
    /// getfattr show (the open timeout, a setting rarely changed).
    var statusColumn: StatusColumn? {
        switch self {
        case .mode, .overflow: .mode
        case .framing: .framing
        case .delivery: .delivery
        case .readers: .readers
        case .writers: .writers
        case .capacity, .buffered: .buffer
        case .bytesWritten: .bytesIn
        case .bytesRead: .bytesOut
        case .dropped: .dropped
        case .openTimeout, .persist: nil
        }
    }
}
