import SystemPackage

/// Broadcast delivery: every reader gets every byte written after its open, at its own
/// pace, through its own position (a cursor) in the stream. The ring holds the bytes from
/// the slowest reader's position on, so memory stays within the capacity: in fifo mode
/// writers wait for the slowest reader (as `tee` does); in ring mode nothing waits, and a
/// reader left more than the capacity behind loses the oldest bytes, counted for it and in
/// `dropped`. With message framing every reader gets whole messages, in the same order.
///
/// Counters: a byte that leaves the ring counts in `bytesRead` if at least one reader read
/// it, and in `dropped` if none did (written while no reader was open, left behind by the
/// only readers that could have read it, evicted in ring mode, or discarded by overflow),
/// so `buffered = bytesWritten - bytesRead - dropped` holds as in shared delivery; what each
/// reader read and lost is on its cursor.
extension PipeMachine where Buffer: ~Copyable {
    /// An open that reads: with broadcast delivery it starts at the end of the stream, and
    /// the bytes buffered ahead of every earlier reader's reading stay unread (see `ReadMarks`).
    mutating func addReader(_ handle: OpenID) {
        readerOpens.insert(handle)
        let buffered = ring.count
        delivery.withBroadcast { state in
            let end = state.base + UInt64(buffered)
            state.cursors.add(handle, at: end)
            state.readMarks.skip(to: end, base: state.base)
        }
    }

    /// An open that read is gone: it holds no bytes back any more.
    mutating func removeReader(_ handle: OpenID, _ step: inout Transition, lend: some Lender) {
        guard readerOpens.remove(handle) != nil else { return }
        guard delivery.withBroadcast({ $0.cursors.remove(handle) }) == true else { return }
        releaseRead(&step, lend: lend)
        settle(&step, lend: lend)   // the room it freed lets waiting writers in
    }

    /// Bytes ahead of a reader's position.
    func available(to handle: OpenID) -> Int { delivery.available(to: handle, buffered: ring.count) }

    mutating func readBroadcast(_ handle: OpenID, size: Int, offset: Int64, nonblocking: Bool, wait: WaitOffer?,
                                _ step: inout Transition, lend: some Lender) -> ReadResult {
        guard delivery.inspectBroadcast({ $0.cursors.contains(handle) }) == true else { return .done(.failed(.badFileDescriptor)) }
        let ahead = available(to: handle)
        if offset > 0 && (framed || ahead == 0) { return .done(.data([])) }
        if ahead > 0 {
            giveBroadcast(handle, size: size, to: .caller, &step, lend: lend)
            settle(&step, lend: lend)
            step.changeReadiness()
            return .answered
        }
        return readNothing(handle, size: size, nonblocking: nonblocking, wait: wait)
    }

    /// Where `handle` reads next in the ring and how much of it a read of `size` takes
    /// (one message at most with framing); nil without a cursor.
    func broadcastRead(_ handle: OpenID, size: Int) -> (offset: Int, limit: Int)? {
        let buffered = ring.count
        return delivery.inspectBroadcast { state -> (offset: Int, limit: Int)? in
            guard let position = state.cursors.position(of: handle, base: state.base) else { return nil }
            var limit = min(size, state.available(to: handle, buffered: buffered))
            if let messages = state.messages { limit = min(limit, messages.remaining(at: position)) }
            return (Int(position - state.base), limit)
        } ?? nil
    }

    /// Lends a reader up to `size` bytes from its position (one message at most with
    /// framing), advances it, and lets go of what every reader has now read.
    mutating func giveBroadcast(_ handle: OpenID, size: Int, to target: ReadTarget, _ step: inout Transition, lend: some Lender) {
        guard let (offset, limit) = broadcastRead(handle, size: size) else { return }
        let (first, second) = ring.segments(from: offset, upTo: limit)
        ReadData.lend(first, second, to: target, through: lend)
        let moved = first.count + second.count
        delivery.withBroadcast { state in
            if let reached = state.cursors.advance(handle, by: moved, base: state.base) { state.readMarks.reached(reached) }
        }
        lastRead = step.now
        releaseRead(&step, lend: lend)
    }

    /// Drops the bytes every reader is past (all of them when no reader is left: nobody
    /// will read them) and the messages they held: read ones count in `bytesRead`, those no
    /// reader read in `dropped`.
    mutating func releaseRead(_ step: inout Transition, lend: some Lender) {
        let buffered = ring.count
        guard let (done, unread) = delivery.withBroadcast({ state -> (Int, UInt64) in
            let end = state.base + UInt64(buffered)
            let slowest = min(max(state.cursors.slowest() ?? end, state.base), end)
            let done = Int(slowest - state.base)
            guard done > 0 else { return (0, 0) }
            let unread = state.readMarks.unread(state.base..<slowest)
            state.base = slowest
            state.readMarks.forget(below: slowest)
            state.messages?.drop(before: slowest)
            return (done, unread)
        }), done > 0 else { return }
        ring.discard(done)
        bytesRead += UInt64(done) - unread
        dropped += unread
    }

    /// Waiting readers whose position has bytes ahead take them. Returns whether any did.
    mutating func serveWaitingBroadcastReaders(_ step: inout Transition, lend: some Lender) -> Bool {
        // One pass: those served leave the queue, the others keep their order.
        var moved = false
        var waiting: [ReadWait] = []
        for wait in readWaits {
            guard available(to: wait.open) > 0 else {
                waiting.append(wait)
                continue
            }
            giveBroadcast(wait.open, size: wait.size, to: .wait(wait.wait), &step, lend: lend)
            moved = true
        }
        if moved { readWaits = waiting }
        return moved
    }

    /// Ring mode: stores `bytes` for the readers open now (with none, nobody could ever read
    /// them: they are dropped). What does not fit goes as `overflow` says: `drop` discards
    /// the new bytes (a message whole), `overwrite` evicts the oldest (whole messages with
    /// framing) from the readers a capacity behind. Every reader loses what it will not get.
    mutating func evictingStore(_ bytes: UnsafeRawBufferPointer, at now: Timestamp) {
        let n = bytes.count
        bytesWritten += UInt64(n)
        guard delivery.inspectBroadcast({ !$0.cursors.isEmpty }) == true else {
            dropped += UInt64(n)
            return
        }
        if framed && (overflow == .drop || n > ring.limit) {
            // A message goes whole or not at all; one larger than the pipe never fits.
            guard ring.free >= n else { return loseForEveryReader(n) }
            return store(bytes, counted: false, at: now)
        }
        if overflow == .drop {
            let fits = min(ring.free, n)
            if fits > 0 { store(UnsafeRawBufferPointer(rebasing: bytes[..<fits]), counted: false, at: now) }
            return loseForEveryReader(n - fits)
        }
        if n > ring.limit {
            // Only the newest capacity's worth of a stream write can stay, in place of
            // everything buffered: every reader loses the rest of it, its head.
            evict(ring.count)
            loseForEveryReader(n - ring.limit)
            return store(UnsafeRawBufferPointer(rebasing: bytes[(n - ring.limit)...]), counted: false, at: now)
        }
        var needed = n - ring.free
        while needed > 0 {
            let message = delivery.inspectBroadcast { state in state.messages?.firstLength(from: state.base) } ?? nil
            evict(min(message ?? needed, ring.count))
            needed = n - ring.free
        }
        store(bytes, counted: false, at: now)
    }

    /// `count` bytes written now never enter the stream: dropped, and lost by every reader.
    private mutating func loseForEveryReader(_ count: Int) {
        guard count > 0 else { return }
        dropped += UInt64(count)
        delivery.withBroadcast { $0.cursors.loseForEveryReader(count) }
    }

    /// Drops the `count` oldest buffered bytes; readers still behind them lose them.
    private mutating func evict(_ count: Int) {
        guard count > 0 else { return }
        ring.discard(count)
        dropped += UInt64(count)
        delivery.withBroadcast { state in
            state.base += UInt64(count)
            state.readMarks.forget(below: state.base)
            state.messages?.drop(before: state.base)
        }
        // Readers now behind `base` have lost the bytes up to it (see `BroadcastCursors`).
    }
}

/// Which bytes of a broadcast pipe some reader has read, so that those leaving the buffer
/// are counted as read or as dropped. A reader reads on from where it opened, at the end of
/// the stream: every byte at or past `highest` (the furthest any reader has read to) is
/// unread, and below it only the stretches that were buffered ahead of every reader's
/// reading when a new reader opened past them (`gaps`, oldest first, disjoint).
struct ReadMarks {
    private(set) var highest: UInt64 = 0
    private var gaps: [Range<UInt64>] = []
    private var head = 0

    /// A reader reached `position` by reading.
    mutating func reached(_ position: UInt64) { highest = max(highest, position) }

    /// A reader opened at `end`: the bytes from the furthest read (or the buffer's start)
    /// up to it are skipped by it, and were read by nobody.
    mutating func skip(to end: UInt64, base: UInt64) {
        let start = max(highest, base)
        guard start < end else { return }
        if head < gaps.count, let last = gaps.last, last.upperBound >= start {
            gaps[gaps.count - 1] = min(last.lowerBound, start)..<max(last.upperBound, end)
        } else {
            gaps.append(start..<end)
        }
    }

    /// How many bytes of `range` no reader read.
    func unread(_ range: Range<UInt64>) -> UInt64 {
        // Past `highest` nothing was read; below it, only the gaps were not.
        let split = min(range.upperBound, max(range.lowerBound, highest))
        var count = range.upperBound - split
        for gap in gaps[head...] {
            let (low, high) = (max(gap.lowerBound, range.lowerBound), min(gap.upperBound, split))
            if high > low { count += high - low }
        }
        return count
    }

    /// Bytes below `position` left the buffer: their stretches are no longer needed.
    mutating func forget(below position: UInt64) {
        while head < gaps.count, gaps[head].upperBound <= position { head += 1 }
        if head > 64 && head * 2 > gaps.count {
            gaps.removeFirst(head)
            head = 0
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

extension ReadMarks {
    func encode(into writer: inout StateWriter) {
        writer.put(highest)
        writer.put(gaps.count - head)
        for gap in gaps[head...] {
            writer.put(gap.lowerBound)
            writer.put(gap.upperBound)
        }
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init()
        highest = try reader.uint64()
        for _ in 0..<(try reader.count(atMost: 1 << 24)) {
            let (low, high) = (try reader.uint64(), try reader.uint64())
            guard low < high, gaps.last.map({ $0.upperBound <= low }) ?? true else { throw StateDecodingError("bad read marks") }
            gaps.append(low..<high)
        }
    }
}

extension BroadcastMessages {
    func encode(into writer: inout StateWriter) {
        writer.put(starts.count - head)
        for index in head..<starts.count {
            writer.put(starts[index])
            writer.put(lengths[index])
        }
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init()
        for _ in 0..<(try reader.count(atMost: PipeConfig.maximumCapacity)) {
            let start = try reader.uint64()
            let length = try reader.count(atMost: PipeConfig.maximumCapacity)
            guard length > 0, starts.last.map({ $0 < start }) ?? true else { throw StateDecodingError("bad broadcast messages") }
            append(start: start, length: length)
        }
    }
}
