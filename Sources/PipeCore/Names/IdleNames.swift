/// The names the kernel holds with no live pipe behind them, oldest first: when there are
/// more than the mount allows, the registry picks the oldest for the kernel to forget.
///
/// Entries go stale when their name becomes live again or is forgotten; each carries the
/// stamp its node had when it went idle, and one whose node no longer has that stamp is
/// skipped.
struct IdleNames {
    private var queue: [(inode: InodeNumber, stamp: UInt64, since: Double)] = []
    private var head = 0
    private var nextStamp: UInt64 = 1

    /// Notes that `inode` went idle at `now` (monotonic seconds); returns the stamp for its node.
    mutating func add(_ inode: InodeNumber, now: Double) -> UInt64 {
        let stamp = nextStamp
        nextStamp += 1
        queue.append((inode, stamp, now))
        return stamp
    }

    /// The oldest entry, left in place.
    var oldest: (inode: InodeNumber, stamp: UInt64, since: Double)? { head < queue.count ? queue[head] : nil }

    /// Removes and returns the oldest entry.
    @discardableResult
    mutating func popOldest() -> (inode: InodeNumber, stamp: UInt64, since: Double)? {
        guard head < queue.count else { return nil }
        let entry = queue[head]
        head += 1
        if head > 1024 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return entry
    }
}
