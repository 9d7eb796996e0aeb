import SystemPackage

/// The extended attributes of a live pipe, `user.npfs.NAME`: seven settings and six figures.
package enum PipeAttribute: String, CaseIterable, Sendable {
    case capacity, mode, overflow, framing
    case openTimeout = "open_timeout"
    case delivery, persist
    case readers, writers, buffered
    case bytesWritten = "bytes_written"
    case bytesRead = "bytes_read"
    case dropped

    /// The most bytes a peek returns.
    package static let peekLimit = 4096

    /// The value of a `user.npfs.set` request.
    package static func setRequest(pipe: [UInt8], changes: [(PipeAttribute, String)]) -> [UInt8] {
        ([pipe] + changes.map { Array("\($0.0.rawValue)=\($0.1)".utf8) }).flatMap { $0 + [0] }
    }

    /// Parses a `user.npfs.set` request: the pipe's name and its changes. EINVAL if it is
    /// malformed; ENODATA for an unknown attribute name.
    package static func parseSetRequest(_ value: [UInt8]) throws(Errno) -> (pipe: [UInt8], changes: [(PipeAttribute, String)]) {
        guard value.last == 0 else { throw .invalidArgument }
        let fields = value.dropLast().split(separator: 0, omittingEmptySubsequences: false)
        guard let name = fields.first, !name.isEmpty, fields.count >= 2 else { throw .invalidArgument }
        var changes: [(PipeAttribute, String)] = []
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")) else { throw .invalidArgument }
            guard let attribute = PipeAttribute(rawValue: String(decoding: field[..<equals], as: UTF8.self)) else {
                throw .noData
            }
            changes.append((attribute, String(decoding: field[(equals + 1)...], as: UTF8.self)))
        }
        return (Array(name), changes)
    }

    package var isSettable: Bool {
        switch self {
        case .capacity, .mode, .overflow, .framing, .openTimeout, .delivery, .persist: true
        default: false
        }
    }

    /// What a value is, for readers that type it (`npfs status --json`).
    package enum Kind: Sendable { case count, seconds, word }

    package var kind: Kind {
        switch self {
        case .capacity, .readers, .writers, .buffered, .bytesWritten, .bytesRead, .dropped: .count
        case .openTimeout: .seconds
        case .mode, .overflow, .framing, .delivery, .persist: .word
        }
    }

    /// The value as `getfattr` shows it: a decimal number or a word.
    package func value(in status: PipeStatus) -> String {
        switch self {
        case .capacity: String(status.config.capacity)
        case .mode: status.config.mode.rawValue
        case .overflow: status.config.overflow.rawValue
        case .framing: status.config.framing.rawValue
        case .openTimeout: PipeConfig.formatTimeout(status.config.openTimeout)
        case .delivery: status.config.delivery.rawValue
        case .persist: status.config.persist ? "on" : "off"
        case .readers: String(status.readers)
        case .writers: String(status.writers)
        case .buffered: String(status.buffered)
        case .bytesWritten: String(status.bytesWritten)
        case .bytesRead: String(status.bytesRead)
        case .dropped: String(status.dropped)
        }
    }

    /// The values a setting takes, for error messages.
    package var allowedValues: String {
        switch self {
        case .capacity: "bytes with an optional K, M or G, from 4K to 1G"
        case .mode: Self.choices(PipeConfig.Mode.self)
        case .overflow: Self.choices(PipeConfig.Overflow.self)
        case .framing: Self.choices(PipeConfig.Framing.self)
        case .delivery: Self.choices(PipeConfig.Delivery.self)
        case .openTimeout: "seconds, decimal, from 0 (wait for ever) to \(Int(PipeConfig.maximumOpenTimeout))"
        case .persist: "on or off"
        default: "nothing: it is a figure, not a setting"
        }
    }

    private static func choices<T: RawRepresentable & CaseIterable>(_: T.Type) -> String where T.RawValue == String {
        T.allCases.map(\.rawValue).joined(separator: " or ")
    }

    /// Why changing this setting can be busy (EBUSY), for error messages.
    package var busyReason: String? {
        switch self {
        case .capacity: "a capacity below what is buffered or below a waiting message"
        case .framing, .delivery: "\(rawValue) changes only while the pipe is empty and no writer waits"
        default: nil
        }
    }

    /// The setting a `setfattr` value asks for. EPERM for a figure, EINVAL for a bad value.
    /// Surrounding white space (a trailing newline from `echo`) is ignored.
    package func setting(from text: String) throws(Errno) -> PipeSetting {
        let value = text.trimmingWhitespace()
        switch self {
        case .capacity:
            guard let bytes = PipeConfig.parseSize(value), PipeConfig.validCapacities.contains(bytes) else {
                throw .invalidArgument
            }
            return .capacity(bytes)
        case .mode:
            guard let mode = PipeConfig.Mode(rawValue: value) else { throw .invalidArgument }
            return .mode(mode)
        case .overflow:
            guard let overflow = PipeConfig.Overflow(rawValue: value) else { throw .invalidArgument }
            return .overflow(overflow)
        case .framing:
            guard let framing = PipeConfig.Framing(rawValue: value) else { throw .invalidArgument }
            return .framing(framing)
        case .delivery:
            guard let delivery = PipeConfig.Delivery(rawValue: value) else { throw .invalidArgument }
            return .delivery(delivery)
        case .openTimeout:
            guard let seconds = PipeConfig.parseTimeout(value) else { throw .invalidArgument }
            return .openTimeout(seconds)
        case .persist:
            switch value {
            case "on": return .persist(true)
            case "off": return .persist(false)
            default: throw .invalidArgument
            }
        default:
            throw .notPermitted
        }
    }
}

extension String {
    package func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        return String(self.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
