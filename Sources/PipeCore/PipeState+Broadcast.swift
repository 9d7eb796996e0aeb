import SystemPackage

/// Broadcast delivery: every reader gets every byte written after its open, at its own
/// pace, through its own position (a cursor) in the stream. The ring holds the bytes from
/// the slowest reader's position on, so memory stays within the capacity: in fifo mode
/// writers wait for the slowest reader (as `tee` does); in ring mode nothing waits, and a
/// reader left more than the capacity behind loses the oldest bytes, counted for it and in
/// `dropped`. With message framing every reader gets whole messages, in the same order.
///
/// Counters: `bytesRead` counts the bytes every reader has read (they leave the ring), so
/// `buffered = bytesWritten - bytesRead - dropped` holds as in shared delivery; what each
/// reader read and lost is on its cursor.
extension PipeState {
    struct Cursor {
        /// The stream position of the next byte this reader reads.
        var position: UInt64
        /// Bytes this reader has read.
        var read: UInt64 = 0
        /// Bytes this reader lost, left behind by a ring-mode pipe.
        var lost: UInt64 = 0
    }

    /// An open that reads: with broadcast delivery it starts at the end of the stream.
    mutating func addReader(_ handle: PipeHandle) {
        readerHandles.insert(handle)
        if broadcast { cursors[handle] = Cursor(position: base + UInt64(ring.count)) }
    }

    /// An open that read is gone: it holds no bytes back any more.
    mutating func removeReader(_ handle: PipeHandle, deliveries: inout Deliveries) {
        guard readerHandles.remove(handle) != nil else { return }
        guard cursors.removeValue(forKey: handle) != nil else { return }
        releaseRead(&deliveries)
        settle(&deliveries)   // the room it freed lets waiting writers in
    }

    /// Bytes ahead of a reader's position.
    func available(to handle: PipeHandle) -> Int {
        guard let cursor = cursors[handle] else { return 0 }
        return Int(base + UInt64(ring.count) - min(cursor.position, base + UInt64(ring.count)))
    }

    mutating func readBroadcast(size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?, handle: PipeHandle?,
                                sink: (ReadData) -> Void, deliveries: inout Deliveries) -> Attempt {
        guard let handle, cursors[handle] != nil else { return .done(.failed(.badFileDescriptor)) }
        let ahead = available(to: handle)
        if offset > 0 && (framed || ahead == 0) { return .done(.data([])) }
        if ahead > 0 {
            giveBroadcast(handle, size: size, deliveries: &deliveries, to: sink)
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .answered
        }
        return readNothing(size: size, nonblocking: nonblocking, waiter: waiter, handle: handle)
    }

    /// Lends a reader up to `size` bytes from its position (one message at most with
    /// framing), advances it, and lets go of what every reader has now read.
    mutating func giveBroadcast(_ handle: PipeHandle, size: Int, deliveries: inout Deliveries, to sink: (ReadData) -> Void) {
        guard var cursor = cursors[handle] else { return }
        var limit = min(size, available(to: handle))
        if framed { limit = min(limit, broadcastMessages.remaining(at: cursor.position)) }
        let (first, second) = ring.segments(from: Int(cursor.position - base), upTo: limit)
        ReadData.lend(first, second, to: sink)
        cursor.position += UInt64(first.count + second.count)
        cursor.read += UInt64(first.count + second.count)
        cursors[handle] = cursor
        lastRead = .now()
        releaseRead(&deliveries)
    }

    /// Drops the bytes every reader has read (all of them when no reader is left: nobody
    /// will read them) and the messages they held.
    mutating func releaseRead(_ deliveries: inout Deliveries) {
        let end = base + UInt64(ring.count)
        let slowest = cursors.values.map(\.position).min() ?? end
        let done = Int(min(slowest, end) - base)
        guard done > 0 else { return }
        ring.discard(done)
        if cursors.isEmpty { dropped += UInt64(done) } else { bytesRead += UInt64(done) }
        base += UInt64(done)
        broadcastMessages.drop(before: base)
    }

    /// Waiting readers whose position has bytes ahead take them. Returns whether any did.
    mutating func serveWaitingBroadcastReaders(_ deliveries: inout Deliveries) -> Bool {
        var moved = false
        var index = 0
        while index < readWaiters.count {
            let wait = readWaiters[index]
            guard let handle = wait.handle, available(to: handle) > 0 else {
                index += 1
                continue
            }
            readWaiters.remove(at: index)
            giveBroadcast(handle, size: wait.size, deliveries: &deliveries) { wait.waiter.resume(reading: $0) }
            moved = true
        }
        return moved
    }

    /// Ring mode: stores `bytes`, evicting the oldest (whole messages with framing) when
    /// the slowest reader is a capacity behind; readers whose bytes go lose them.
    mutating func evictingStore(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        bytesWritten += UInt64(n)
        guard n <= ring.limit else {
            // A message larger than the pipe never fits; of a stream write, only the newest
            // capacity's worth can stay, in place of everything buffered.
            guard !framed else { dropped += UInt64(n); return }
            evict(ring.count)
            dropped += UInt64(n - ring.limit)
            store(UnsafeRawBufferPointer(rebasing: bytes[(n - ring.limit)...]), counted: false)
            return
        }
        var needed = n - ring.free
        while needed > 0 {
            let evicted = framed ? broadcastMessages.firstLength(from: base) ?? needed : needed
            evict(min(evicted, ring.count))
            needed = n - ring.free
        }
        store(bytes, counted: false)
    }

    /// Drops the `count` oldest buffered bytes; readers still behind them lose them.
    private mutating func evict(_ count: Int) {
        guard count > 0 else { return }
        ring.discard(count)
        dropped += UInt64(count)
        base += UInt64(count)
        broadcastMessages.drop(before: base)
        for (handle, var cursor) in cursors where cursor.position < base {
            cursor.lost += base - cursor.position
            cursor.position = base
            cursors[handle] = cursor
        }
    }
}

/// The messages buffered in a broadcast pipe with message framing: where each starts in
/// the stream and how long it is, oldest first. Readers at different positions each find
/// the message they are in.
struct BroadcastMessages {
    private var starts: [UInt64] = []
    private var lengths: [Int] = []
    private var head = 0

    mutating func append(start: UInt64, length: Int) {
        starts.append(start)
        lengths.append(length)
    }

    /// Drops the messages that end at or before `position`.
    mutating func drop(before position: UInt64) {
        while head < starts.count, starts[head] + UInt64(lengths[head]) <= position { head += 1 }
        if head > 64 && head * 2 > starts.count {
            starts.removeFirst(head)
            lengths.removeFirst(head)
            head = 0
        }
    }

    /// Bytes left of the message `position` is in (0 if none).
    func remaining(at position: UInt64) -> Int {
        var low = head, high = starts.count
        while low < high {
            let middle = (low + high) / 2
            if starts[middle] + UInt64(lengths[middle]) <= position { low = middle + 1 } else { high = middle }
        }
        guard low < starts.count, starts[low] <= position else { return 0 }
        return Int(starts[low] + UInt64(lengths[low]) - position)
    }

    /// The length of the oldest message from `position` on.
    func firstLength(from position: UInt64) -> Int? {
        let left = remaining(at: position)
        return left > 0 ? left : nil
    }

    /// The bytes of the messages from `position` on (for the consistency check).
    func bytes(from position: UInt64) -> Int {
        var total = 0
        for index in head..<starts.count where starts[index] + UInt64(lengths[index]) > position {
            total += Int(starts[index] + UInt64(lengths[index]) - max(starts[index], position))
        }
        return total
    }
}
