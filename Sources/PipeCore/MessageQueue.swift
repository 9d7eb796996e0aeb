/// The lengths of the messages buffered in a message-framed pipe, oldest first, and how
/// much of the oldest one a reader has taken already.
///
/// Invariant (checked by the pipe's tests): the lengths still unread add up to the bytes
/// in the ring. The pipe keeps it by construction; the methods assert it in debug builds
/// and never trap on it in release builds.
struct MessageQueue {
    private var lengths: [Int] = []
    private var head = 0
    /// Bytes of the oldest message already read (a reader's buffer was smaller than it).
    private(set) var consumedOfOldest = 0

    var isEmpty: Bool { head == lengths.count }
    var count: Int { lengths.count - head }

    /// Unread bytes of the oldest message.
    var oldestRemaining: Int? { isEmpty ? nil : lengths[head] - consumedOfOldest }

    mutating func append(_ length: Int) {
        assert(length > 0, "messages are never empty")
        guard length > 0 else { return }
        lengths.append(length)
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
        guard let remaining = oldestRemaining else { return nil }
        head += 1
        consumedOfOldest = 0
        if head > 64 && head * 2 > lengths.count {
            lengths.removeFirst(head)
            head = 0
        }
        return remaining
    }

    /// All unread bytes.
    var unreadBytes: Int { lengths[head...].reduce(0, +) - consumedOfOldest }
}
