import SystemPackage

/// The settings of one pipe. Every pipe starts with the mount's defaults; a live pipe's
/// settings can change (extended attributes `user.npfs.*`).
package struct PipeConfig: Sendable, Equatable {
    /// Smallest capacity: one page, so that a PIPE_BUF write always fits, as in Linux.
    package static let minimumCapacity = 4096
    /// Largest capacity of one pipe.
    package static let maximumCapacity = 1 << 30
    /// Linux's default pipe capacity.
    package static let defaultCapacity = 65536
    /// Writes of at most this many bytes are never interleaved with other writers' data.
    package static let atomicWriteLimit = 4096   // PIPE_BUF

    /// Who waits.
    package enum Mode: String, Sendable, CaseIterable {
        /// Linux FIFO behaviour: opens, reads and writes wait for their partner or for room.
        case fifo
        /// The seed driver's ring: nothing ever waits; what does not fit overflows.
        case ring
    }

    /// What a ring-mode write does with bytes that do not fit (counted as dropped either way).
    package enum Overflow: String, Sendable, CaseIterable {
        /// Discard the new bytes that do not fit (the seed's behaviour).
        case drop
        /// Discard the oldest bytes to make room.
        case overwrite
    }

    /// Whether write boundaries are kept.
    package enum Framing: String, Sendable, CaseIterable {
        /// A plain byte stream.
        case stream
        /// Each write(2) is one message; each read(2) returns at most one message.
        case message
    }

    /// Who gets the bytes.
    package enum Delivery: String, Sendable, CaseIterable {
        /// Readers compete for bytes, as on a FIFO.
        case shared
        /// Every reader gets every byte written after its open, at its own pace.
        case broadcast
    }

    /// Bytes the pipe can buffer.
    package var capacity: Int
    package var delivery: Delivery = .shared
    /// Seconds an open may wait for its partner before it fails ETIMEDOUT; 0 waits forever.
    package var openTimeout: Double = 0
    /// The pipe and its bytes outlive its last close: until `rm`, or (local mounts) until
    /// unmount; in a cluster, every daemon and server restart. A reader opening it while it
    /// holds bytes does not wait for a writer.
    package var persist = false
    /// The longest `openTimeout`: a year.
    package static let maximumOpenTimeout = 365.0 * 86_400

    /// A timeout as `open_timeout=` and `user.npfs.open_timeout` take it: decimal seconds
    /// ("2", "0.5"), from 0 (wait forever) to a year. nil for anything else.
    package static func parseTimeout(_ text: String) -> Double? {
        guard !text.isEmpty, text.count <= 20, text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              text.filter({ $0 == "." }).count <= 1, text.first != ".", text.last != ".",
              let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= maximumOpenTimeout else { return nil }
        return seconds
    }

    /// "65536", "64K", "64k", "64KiB", "1M", "1G": bytes, with binary multiples.
    package static func parseSize(_ text: String) -> Int? {
        var digits = Substring(text)
        var multiplier = 1
        for (suffixes, factor) in [(["KiB", "KB", "K", "k"], 1 << 10), (["MiB", "MB", "M", "m"], 1 << 20), (["GiB", "GB", "G", "g"], 1 << 30)] {
            if let suffix = suffixes.first(where: { digits.hasSuffix($0) }) {
                digits = digits.dropLast(suffix.count)
                multiplier = factor
                break
            }
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
              let number = Int(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// A timeout as `getfattr` shows it: "0", "2", "0.5".
    package static func formatTimeout(_ seconds: Double) -> String {
        seconds == seconds.rounded() && seconds < 1e15 ? String(Int64(seconds)) : String(seconds)
    }
    package var mode: Mode
    package var overflow: Overflow
    package var framing: Framing

    package init(capacity: Int = PipeConfig.defaultCapacity, mode: Mode = .fifo, overflow: Overflow = .drop,
                framing: Framing = .stream) throws(Errno) {
        guard PipeConfig.validCapacities.contains(capacity) else { throw .invalidArgument }
        self.capacity = capacity
        self.mode = mode
        self.overflow = overflow
        self.framing = framing
    }

    package static let validCapacities = minimumCapacity...maximumCapacity

    /// Linux FIFO behaviour with the kernel's default capacity.
    package static let defaults = PipeConfig(uncheckedCapacity: defaultCapacity)

    private init(uncheckedCapacity: Int) {
        capacity = uncheckedCapacity
        mode = .fifo
        overflow = .drop
        framing = .stream
    }
}
