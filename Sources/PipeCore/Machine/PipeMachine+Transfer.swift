import SystemPackage

/// What a write decided: its answer, or that it waits, with the request's bytes from
/// `taken` on to be kept (see `PipeMachine.queueWrite`).
enum WriteDecision: Equatable {
    case attempt(WriteResult)
    case mustKeep(taken: Int, atomic: Bool)

    static func done(_ reply: WriteReply) -> WriteDecision { .attempt(.done(reply)) }
    static let mustWait = WriteDecision.attempt(.mustWait)
}

/// Reads and writes: what moves between writers, the ring and readers.
extension PipeMachine where Buffer: ~Copyable {
    /// A read of up to `size` bytes through `open`. Bytes there now are lent to the caller
    /// (the answer is `.answered`); end of file and errors are `.done`. With no `wait`
    /// offered, a read that would wait answers `.mustWait` and changes nothing.
    mutating func read(_ open: OpenID, size: Int, offset: Int64, nonblocking: Bool, wait: WaitOffer?,
                       _ step: inout Transition, lend: some Lender) -> ReadResult {
        guard size > 0 else { return .done(.data([])) }
        if broadcast {
            return readBroadcast(open, size: size, offset: offset, nonblocking: nonblocking, wait: wait, &step, lend: lend)
        }
        // A request past offset 0 continues a read(2) whose earlier part was answered in
        // full (the kernel splits large reads). A pipe read returns what it has and a
        // message read one message: never wait, and never start a second message.
        if offset > 0 && (framed || ring.isEmpty) { return .done(.data([])) }
        if !ring.isEmpty {
            give(size, to: .caller, &step, lend: lend)
            settle(&step, lend: lend)
            step.changeReadiness()
            return .answered
        }
        return readNothing(open, size: size, nonblocking: nonblocking, wait: wait)
    }

    /// A read that finds no bytes: end of file when no writer is left (or in ring mode),
    /// EAGAIN when non-blocking; otherwise it waits (`.mustWait` without a wait offered).
    mutating func readNothing(_ open: OpenID, size: Int, nonblocking: Bool, wait: WaitOffer?) -> ReadResult {
        if !waits || liveWriters == 0 { return .done(.data([])) }
        if nonblocking { return .done(.failed(.resourceTemporarilyUnavailable)) }
        guard let wait else { return .mustWait }
        if wait.interrupted { return .done(.failed(.interrupted)) }
        readWaits.append(ReadWait(wait: wait.id, open: open, size: size))
        return .queued
    }

    /// A write of `bytes` through `open`. One that waits (`.mustKeep`) needs the bytes not
    /// taken kept beyond the request, which the executor does and hands to `queueWrite`
    /// (in the same step). With no `wait` offered, a write that would wait answers
    /// `.mustWait` and changes nothing.
    mutating func write(_ open: OpenID, _ bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool, wait: WaitOffer?,
                        _ step: inout Transition, lend: some Lender) -> WriteDecision {
        let n = bytes.count
        guard n > 0 else { return .done(.written(0)) }
        // A message is one FUSE request: a later part of a larger write(2) (offset > 0)
        // cannot join it, and a message larger than the pipe never fits.
        if framed && (offset > 0 || n > ring.limit) { return .done(.failed(.messageTooLong)) }
        if !waits {
            overflowingStore(bytes, at: step.now)
            settle(&step, lend: lend)
            step.changeReadiness()
            return .done(.written(n))
        }
        if liveReaders == 0 { return .done(.failed(.brokenPipe)) }
        // Only a whole write(2) of at most PIPE_BUF is atomic; the kernel's later parts of a
        // large write arrive with offset > 0. A message is always whole.
        let atomic = framed || (offset == 0 && n <= PipeConfig.atomicWriteLimit)
        // Blocking writers queue behind those already waiting, so none starves.
        let mayGoNow = writeWaits.isEmpty || nonblocking
        // Readers wait only on an empty ring: while the request's own buffer is valid, its
        // bytes go straight into their replies, in order, and only the rest is buffered.
        let handing = mayGoNow && !framed && !broadcast ? handOffCount(n, atomic: atomic) : 0
        // Without a waiter, a write that would wait changes nothing.
        if wait == nil && !nonblocking && !(mayGoNow && ring.free >= n - handing) { return .mustWait }
        let taken = handOff(UnsafeRawBufferPointer(rebasing: bytes[..<handing]), &step, lend: lend)
        if taken == n {
            step.changeReadiness()
            return .done(.written(n))
        }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[taken...])
        if mayGoNow && ring.free >= rest.count {
            store(rest, at: step.now)
            settle(&step, lend: lend)
            step.changeReadiness()
            return .done(.written(n))
        }
        if nonblocking {
            let fits = atomic ? 0 : min(ring.free, rest.count)
            guard fits > 0 else { return .done(.failed(.resourceTemporarilyUnavailable)) }
            store(UnsafeRawBufferPointer(rebasing: rest[..<fits]), at: step.now)
            settle(&step, lend: lend)
            step.changeReadiness()
            return .done(.written(taken + fits))
        }
        guard let wait else { return .mustWait }
        if wait.interrupted { return .done(taken > 0 ? .written(taken) : .failed(.interrupted)) }
        return .mustKeep(taken: taken, atomic: atomic)
    }

    /// A write that must wait, with the bytes it had not handed over kept by the executor
    /// (nil: there is no room for them, and it fails ENOBUFS, or returns what it handed).
    mutating func queueWrite(_ wait: WaitID, open: OpenID, kept: WaitingBytes?, taken: Int, atomic: Bool,
                             _ step: inout Transition, lend: some Lender) -> WriteResult {
        guard let kept else {
            // The writer's share of waiting writes' bytes is full: this one cannot wait.
            step.changeReadiness()
            return .done(taken > 0 ? .written(taken) : .failed(.noBufferSpace))
        }
        // Queue, then let `settle` move what fits: the one place data moves between waiting
        // writers, the ring and waiting readers (it may even complete this write).
        writeWaits.append(WriteWait(wait: wait, open: open, data: kept, taken: 0, atomic: atomic, takenBefore: taken))
        settle(&step, lend: lend)
        return .queued
    }

    /// Buffers bytes that fit; with message framing, `bytes` is one whole message.
    /// `counted`: they are written bytes (a ring write counts what it was handed instead).
    mutating func store(_ bytes: UnsafeRawBufferPointer, counted: Bool = true, at now: Timestamp) {
        let buffered = ring.count
        ring.write(bytes)
        if framed { delivery.recordMessage(length: bytes.count, after: buffered) }
        if counted { bytesWritten += UInt64(bytes.count) }
        lastWrite = now
    }

    /// What a read of up to `max` bytes by `reader` would return, left in place: in message
    /// framing, of its next message only. With broadcast delivery, from the reader's own
    /// position (without one, the newest reader's: where a reader opening now would be).
    func peek(_ max: Int, reader: OpenID?) -> [UInt8] {
        guard max > 0 else { return [] }
        guard broadcast else {
            let (first, second) = ring.segments(upTo: framed ? min(max, delivery.oldestMessageRemaining ?? 0) : max)
            return Array(first) + Array(second)
        }
        let newest = delivery.inspectBroadcast { state in
            reader.flatMap { state.cursors.contains($0) ? $0 : nil }
                ?? state.cursors.handles.max(by: { $0.handle.rawValue < $1.handle.rawValue })
        } ?? nil
        guard let newest, let (offset, limit) = broadcastRead(newest, size: max) else { return [] }
        let (first, second) = ring.segments(from: offset, upTo: limit)
        return Array(first) + Array(second)
    }

    /// How many bytes of a write of `n` go straight to waiting readers (the ring is empty
    /// while they wait): up to what they asked for; for an atomic write, only if what they
    /// leave of it fits the ring whole.
    func handOffCount(_ n: Int, atomic: Bool) -> Int {
        guard !readWaits.isEmpty, ring.isEmpty else { return 0 }
        var wanted = 0
        for wait in readWaits where wanted < n { wanted += wait.size }
        let count = min(wanted, n)
        return atomic && n - count > ring.free ? 0 : count
    }

    /// Hands `bytes` (counted by `handOffCount`) to waiting readers, oldest first, each up
    /// to its size. Returns the bytes taken.
    mutating func handOff(_ bytes: UnsafeRawBufferPointer, _ step: inout Transition, lend: some Lender) -> Int {
        guard !bytes.isEmpty else { return 0 }
        var taken = 0
        while taken < bytes.count, !readWaits.isEmpty {
            let wait = readWaits.removeFirst()
            let part = UnsafeRawBufferPointer(rebasing: bytes[taken..<min(bytes.count, taken + wait.size)])
            ReadData.lend(part, to: .wait(wait.wait), through: lend)
            taken += part.count
        }
        bytesWritten += UInt64(taken)
        bytesRead += UInt64(taken)
        lastWrite = step.now
        lastRead = lastWrite
        return taken
    }

    /// Lends a read of at most `size` bytes to `target`, from the stream or from the
    /// oldest message only, and consumes what it lent.
    ///
    /// A stream read does not stop at what the ring holds while writers wait with bytes
    /// they have already handed over: it takes theirs too, in order, up to `size`, straight
    /// from their requests. To the reader that is the same as reading again at once; it
    /// saves a FUSE round trip per capacity's worth of a large transfer. Writers whose bytes
    /// are all taken complete; the ring is then refilled from those still waiting.
    mutating func give(_ size: Int, to target: ReadTarget, _ step: inout Transition, lend: some Lender) {
        let limit = framed ? min(size, delivery.oldestMessageRemaining ?? 0) : size
        let (first, second) = ring.segments(upTo: limit)
        let fromRing = first.count + second.count
        var total = fromRing
        // Waiting writers whose bytes are all lent, and the bytes lent of the next one.
        var completed = 0
        var partial = 0
        withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: ReadData.maximumPieces) { pieces in
            var used = ReadData.place(first, second, into: pieces)
            while !framed, total < limit, used < pieces.count, completed < writeWaits.count {
                let wait = writeWaits[completed]
                let part = min(wait.remaining, limit - total)
                pieces[used] = UnsafeRawBufferPointer(rebasing: wait.data.bytes[wait.taken..<(wait.taken + part)])
                used += 1
                total += part
                if part < wait.remaining {
                    partial = part
                    break
                }
                completed += 1
            }
            lend.lend(ReadData(pieces: UnsafeBufferPointer(rebasing: pieces[..<used]), count: total), to: target)
        }
        ring.discard(fromRing)
        if framed { delivery.withMessages { $0.consume(fromRing) } }
        for wait in writeWaits.prefix(completed) {
            step.resume(wait.wait, with: .written(wait.takenBefore + wait.data.bytes.count))
        }
        writeWaits.removeFirst(completed)
        if partial > 0 { writeWaits[0].taken += partial }
        let direct = total - fromRing
        if direct > 0 {
            bytesWritten += UInt64(direct)
            lastWrite = step.now
        }
        bytesRead += UInt64(total)
        lastRead = step.now
    }

    /// Ring mode: buffers `bytes` whatever the room, discarding (and counting) new bytes
    /// with `overflow=drop` or the oldest with `overflow=overwrite`; messages whole.
    mutating func overflowingStore(_ bytes: UnsafeRawBufferPointer, at now: Timestamp) {
        if broadcast { return evictingStore(bytes, at: now) }
        let n = bytes.count
        bytesWritten += UInt64(n)
        switch (delivery.framing, overflow) {
        case (.stream, .drop):
            let fits = min(ring.free, n)
            if fits > 0 { store(UnsafeRawBufferPointer(rebasing: bytes[..<fits]), counted: false, at: now) }
            dropped += UInt64(n - fits)
        case (.stream, .overwrite):
            // Only the newest `capacity` bytes can survive.
            let kept = min(n, ring.limit)
            let evicted = max(0, kept - ring.free)
            ring.discard(evicted)
            dropped += UInt64(evicted + (n - kept))
            store(UnsafeRawBufferPointer(rebasing: bytes[(n - kept)...]), counted: false, at: now)
        case (.message, .drop):
            if ring.free >= n { store(bytes, counted: false, at: now) } else { dropped += UInt64(n) }
        case (.message, .overwrite):
            // Callers refuse messages larger than the capacity; one that got here anyway is
            // dropped whole rather than evicting everything in vain.
            guard n <= ring.limit else { dropped += UInt64(n); break }
            while ring.free < n, let evicted = delivery.withMessages({ $0.removeOldest() }) ?? nil {
                ring.discard(evicted)
                dropped += UInt64(evicted)
            }
            assert(ring.free >= n, "message lengths do not add up to the bytes buffered")
            if ring.free >= n { store(bytes, counted: false, at: now) } else { dropped += UInt64(n) }
        }
    }

    /// Moves data until nobody waiting can proceed: waiting readers take what is buffered,
    /// waiting writers (in order) fill the room that frees up. Afterwards no reader waits
    /// while bytes are buffered, and no writer waits while its next part would fit.
    mutating func settle(_ step: inout Transition, lend: some Lender) {
        var moved = false
        while serveWaitingReaders(&step, lend: lend) || feedWaitingWriters(&step, lend: lend) { moved = true }
        if moved { step.changeReadiness() }
    }

    /// Hands buffered bytes to waiting readers, oldest first. Returns whether any moved.
    mutating func serveWaitingReaders(_ step: inout Transition, lend: some Lender) -> Bool {
        if broadcast { return serveWaitingBroadcastReaders(&step, lend: lend) }
        var moved = false
        while !ring.isEmpty, !readWaits.isEmpty {
            let wait = readWaits.removeFirst()
            give(wait.size, to: .wait(wait.wait), &step, lend: lend)
            moved = true
        }
        return moved
    }

    /// Fills free room from waiting writers in order; an atomic one only when it fits whole.
    /// Returns whether any bytes moved.
    mutating func feedWaitingWriters(_ step: inout Transition, lend: some Lender) -> Bool {
        var moved = false
        while var wait = writeWaits.first {
            let room = ring.free
            if wait.atomic && room < wait.remaining { break }
            let n = min(room, wait.remaining)
            guard n > 0 else { break }
            store(UnsafeRawBufferPointer(rebasing: wait.data.bytes[wait.taken..<(wait.taken + n)]), at: step.now)
            wait.taken += n
            moved = true
            guard wait.remaining == 0 else {
                writeWaits[0] = wait
                break
            }
            writeWaits.removeFirst()
            step.resume(wait.wait, with: .written(wait.written))
        }
        return moved
    }
}
