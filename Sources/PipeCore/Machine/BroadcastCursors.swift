/// Broadcast delivery's readers: each one's position in the stream and what it read and
/// lost, at a cost that does not grow with their number. A read moves one cursor (O(1)),
/// the slowest position is kept in a heap (O(log readers), amortized), and losses that hit
/// every reader (bytes evicted from under them, a write no reader gets) are counted once:
/// a cursor behind the buffer's start has lost the bytes up to it, and every cursor has
/// lost what was lost by all since it opened.
struct BroadcastCursors {
    struct Cursor {
        /// The stream position of the next byte this reader reads; may fall behind the
        /// buffer's start, from which it reads on.
        var position: UInt64
        /// Bytes this reader has read.
        var read: UInt64 = 0
        /// Bytes this reader lost, as counted when it last caught up.
        var lost: UInt64 = 0
        /// `lostByAll` when it opened.
        let lostByAllAtOpen: UInt64
    }

    private var cursors: [OpenID: Cursor] = [:]
    /// Positions as cursors reached them; an entry whose cursor moved on or is gone is
    /// stale and dropped when it reaches the top.
    private var heap = MinimumHeap()
    /// Bytes every reader open at the time lost (written but stored for none).
    private var lostByAll: UInt64 = 0

    var isEmpty: Bool { cursors.isEmpty }
    var handles: Dictionary<OpenID, Cursor>.Keys { cursors.keys }
    func contains(_ handle: OpenID) -> Bool { cursors[handle] != nil }

    /// A reader opened at `position`.
    mutating func add(_ handle: OpenID, at position: UInt64) {
        cursors[handle] = Cursor(position: position, lostByAllAtOpen: lostByAll)
        heap.push(position, handle)
    }

    /// A reader is gone. Returns whether it had a cursor.
    mutating func remove(_ handle: OpenID) -> Bool {
        guard cursors.removeValue(forKey: handle) != nil else { return false }
        compactIfStale()
        return true
    }

    /// Every reader starts again at `position` (delivery switched to broadcast).
    mutating func reset(_ readers: Set<OpenID>, at position: UInt64) {
        (cursors, heap) = ([:], MinimumHeap())
        for handle in readers { add(handle, at: position) }
    }

    /// Where `handle` reads next, within a buffer starting at `base`.
    func position(of handle: OpenID, base: UInt64) -> UInt64? {
        cursors[handle].map { max($0.position, base) }
    }

    /// `handle` read `count` bytes from its position within a buffer starting at `base`
    /// (first catching up with the start, counting what it skipped as lost). Returns its new position.
    @discardableResult
    mutating func advance(_ handle: OpenID, by count: Int, base: UInt64) -> UInt64? {
        guard var cursor = cursors[handle] else { return nil }
        if cursor.position < base { (cursor.lost, cursor.position) = (cursor.lost + (base - cursor.position), base) }
        cursor.position += UInt64(count)
        cursor.read += UInt64(count)
        cursors[handle] = cursor
        heap.push(cursor.position, handle)
        compactIfStale()
        return cursor.position
    }

    /// `count` bytes no reader open now will get.
    mutating func loseForEveryReader(_ count: Int) { lostByAll += UInt64(count) }

    /// What `handle` has lost, within a buffer starting at `base`.
    func lost(by handle: OpenID, base: UInt64) -> UInt64? {
        cursors[handle].map { $0.lost + (lostByAll - $0.lostByAllAtOpen) + (base > $0.position ? base - $0.position : 0) }
    }

    /// Every reader's losses, within a buffer starting at `base`.
    func losses(base: UInt64) -> [OpenID: UInt64] {
        Dictionary(uniqueKeysWithValues: cursors.keys.map { ($0, lost(by: $0, base: base) ?? 0) })
    }

    /// The slowest reader's position (nil with no reader): the heap's top, once its stale
    /// entries are dropped.
    mutating func slowest() -> UInt64? {
        while let (position, handle) = heap.top {
            if cursors[handle]?.position == position { return position }
            heap.pop()
        }
        return nil
    }

    /// For the consistency check: every position is at most `end`, and the heap's answer
    /// is the true minimum.
    func isConsistent(end: UInt64) -> Bool {
        var copy = self
        return cursors.values.allSatisfy { $0.position <= end } && copy.slowest() == cursors.values.map(\.position).min()
    }

    /// Rebuilds the heap when stale entries outnumber live ones, so that it stays within
    /// twice the readers (the rebuild costs as much as the pushes it follows).
    private mutating func compactIfStale() {
        guard heap.count > 2 * cursors.count + 64 else { return }
        heap = MinimumHeap()
        for (handle, cursor) in cursors { heap.push(cursor.position, handle) }
    }
}

/// A binary min-heap of positions, each with the reader that reached it.
struct MinimumHeap {
    private var entries: [(position: UInt64, handle: OpenID)] = []

    var count: Int { entries.count }
    var top: (UInt64, OpenID)? { entries.first.map { ($0.position, $0.handle) } }

    mutating func push(_ position: UInt64, _ handle: OpenID) {
        entries.append((position, handle))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].position < entries[parent].position else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !entries.isEmpty else { return }
        entries.swapAt(0, entries.count - 1)
        entries.removeLast()
        var parent = 0
        while true {
            let (left, right) = (2 * parent + 1, 2 * parent + 2)
            var smallest = parent
            if left < entries.count && entries[left].position < entries[smallest].position { smallest = left }
            if right < entries.count && entries[right].position < entries[smallest].position { smallest = right }
            guard smallest != parent else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

extension BroadcastCursors {
    /// Each reader's cursor and the losses shared by all (see `StateWriter`).
    func encode(into writer: inout StateWriter) {
        writer.put(lostByAll)
        writer.put(cursors.count)
        for (open, cursor) in cursors.sorted(by: { OpenID.precedes($0.key, $1.key) }) {
            open.encode(into: &writer)
            writer.put(cursor.position)
            writer.put(cursor.read)
            writer.put(cursor.lost)
            writer.put(cursor.lostByAllAtOpen)
        }
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init()
        lostByAll = try reader.uint64()
        for _ in 0..<(try reader.count(atMost: 1 << 24)) {
            let open = try OpenID(decoding: &reader)
            let cursor = Cursor(position: try reader.uint64(), read: try reader.uint64(), lost: try reader.uint64(),
                                lostByAllAtOpen: try reader.uint64())
            guard cursor.lostByAllAtOpen <= lostByAll else { throw StateDecodingError("bad broadcast cursor") }
            cursors[open] = cursor
            heap.push(cursor.position, open)
        }
    }
}
