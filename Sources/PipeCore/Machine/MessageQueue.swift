/// The lengths of the messages buffered in a message-framed pipe, oldest first, and how
/// much of the oldest one a reader has taken already.
///
/// The lengths are kept as LEB128 varints in a byte ring: one byte for a message shorter
/// than 128 bytes, three for one up to 2 MiB, so the bookkeeping never costs more than
/// the messages themselves, and its memory is freed with theirs.
///
/// Invariant (checked by the pipe's tests): the lengths still unread add up to the bytes
/// in the ring. The pipe keeps it by construction; the methods assert it in debug builds
/// and never trap on it in release builds.
struct MessageQueue: ~Copyable {
    private var lengths = ByteRing(limit: PipeConfig.maximumCapacity)
    /// The oldest message's length and the bytes its varint takes, decoded once.
    private var oldest: (length: Int, encodedSize: Int)?
    /// Bytes of the oldest message already read (a reader's buffer was smaller than it).
    private(set) var consumedOfOldest = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Unread bytes of the oldest message.
    var oldestRemaining: Int? { oldest.map { $0.length - consumedOfOldest } }

    mutating func append(_ length: Int) {
        assert(length > 0, "messages are never empty")
        guard length > 0 else { return }
        var encoded: UInt64 = 0   // little-endian bytes, at most 5 for a capacity of up to 1 GiB
        var size = 0
        var rest = length
        repeat {
            encoded |= UInt64(UInt8(rest & 0x7F) | (rest >= 0x80 ? 0x80 : 0)) << (8 * size)
            size += 1
            rest >>= 7
        } while rest > 0 && size < 8
        withUnsafeBytes(of: encoded.littleEndian) { lengths.write(UnsafeRawBufferPointer(rebasing: $0[..<size])) }
        count += 1
        if oldest == nil { oldest = (length, size) }
    }

    /// A reader took `n` bytes of the oldest message.
    mutating func consume(_ n: Int) {
        guard let remaining = oldestRemaining else {
            assert(n == 0, "consume from no message")
            return
        }
        assert(n <= remaining, "a read crossed a message boundary")
        consumedOfOldest += min(n, remaining)
        if n >= remaining { removeOldest() }
    }

    /// Drops the oldest message; returns its unread bytes, or nil if there is none.
    @discardableResult
    mutating func removeOldest() -> Int? {
        guard let remaining = oldestRemaining, let head = oldest else { return nil }
        lengths.discard(head.encodedSize)
        count -= 1
        consumedOfOldest = 0
        oldest = decodeOldest()
        return remaining
    }

    /// The varint at the front of `lengths`.
    private func decodeOldest() -> (length: Int, encodedSize: Int)? {
        var word: UInt64 = 0
        let available = withUnsafeMutableBytes(of: &word) { lengths.peek(into: $0) }
        var length = 0
        for index in 0..<available {
            let byte = UInt8(truncatingIfNeeded: UInt64(littleEndian: word) >> (8 * index))
            length |= Int(byte & 0x7F) << (7 * index)
            if byte & 0x80 == 0 { return (length, index + 1) }
        }
        return nil
    }

    /// Frees the lengths' storage if idle (see `ByteRing.trim`).
    mutating func trim() { lengths.trim() }

    /// Bytes of memory the lengths take now.
    var allocatedBytes: Int { lengths.allocatedBytes }

    /// All unread bytes (for tests: it decodes every length).
    var unreadBytes: Int {
        var bytes = [UInt8](repeating: 0, count: lengths.count)
        _ = bytes.withUnsafeMutableBytes { lengths.peek(into: $0) }
        var total = 0, length = 0, shift = 0
        for byte in bytes {
            length |= Int(byte & 0x7F) << shift
            shift += 7
            if byte & 0x80 == 0 { (total, length, shift) = (total + length, 0, 0) }
        }
        return total - consumedOfOldest
    }
}

extension MessageQueue {
    /// The lengths, oldest first, and how much of the oldest was read (see `StateWriter`).
    func encode(into writer: inout StateWriter) {
        var bytes = [UInt8](repeating: 0, count: lengths.count)
        _ = bytes.withUnsafeMutableBytes { lengths.peek(into: $0) }
        writer.put(count)
        writer.put(consumedOfOldest)
        var length = 0, shift = 0
        for byte in bytes {
            length |= Int(byte & 0x7F) << shift
            shift += 7
            if byte & 0x80 == 0 {
                writer.put(length)
                (length, shift) = (0, 0)
            }
        }
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init()
        let count = try reader.count(atMost: PipeConfig.maximumCapacity)
        let consumed = try reader.count(atMost: PipeConfig.maximumCapacity)
        for _ in 0..<count { append(try reader.count(atMost: PipeConfig.maximumCapacity)) }
        guard consumed == 0 || consumed < (oldestRemaining ?? 0) else { throw StateDecodingError("bad message queue") }
        consumedOfOldest = consumed
    }
}
