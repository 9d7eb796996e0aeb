import SystemPackage

/// Reads and writes: what moves between writers, the ring and readers.
extension PipeState {
    /// A read of up to `size` bytes. Bytes there now go to `sink`, lent under the lock
    /// (the answer is `.answered`); end of file and errors are `.done`.
    mutating func read(size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?, handle: PipeHandle? = nil,
                       sink: (ReadData) -> Void, deliveries: inout Deliveries) -> Attempt {
        guard size > 0 else { return .done(.data([])) }
        if broadcast {
            return readBroadcast(size: size, offset: offset, nonblocking: nonblocking, waiter: waiter, handle: handle,
                                 sink: sink, deliveries: &deliveries)
        }
        // A request past offset 0 continues a read(2) whose earlier part was answered in
        // full (the kernel splits large reads). A pipe read returns what it has and a
        // message read one message: never wait, and never start a second message.
        if offset > 0 && (framed || ring.isEmpty) { return .done(.data([])) }
        if !ring.isEmpty {
            give(size, deliveries: &deliveries, to: sink)
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .answered
        }
        return readNothing(size: size, nonblocking: nonblocking, waiter: waiter, handle: handle)
    }

    /// A read that finds no bytes: end of file when no writer is left (or in ring mode),
    /// EAGAIN when non-blocking; otherwise it waits (`.mustWait` without a waiter).
    mutating func readNothing(size: Int, nonblocking: Bool, waiter: (any PipeWaiter)?, handle: PipeHandle?) -> Attempt {
        if !waits || liveWriters == 0 { return .done(.data([])) }
        if nonblocking { return .done(.failed(.resourceTemporarilyUnavailable)) }
        guard let waiter else { return .mustWait }
        if waiter.isInterrupted { return .done(.failed(.interrupted)) }
        readWaiters.append(ReadWait(waiter: waiter, size: size, handle: handle))
        return .queued
    }

    /// A write of `bytes`; one that waits holds a copy of what is left of them, charged to
    /// `uid`'s share of the mount's budget (ENOBUFS beyond it).
    mutating func write(_ bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
                        handle: PipeHandle? = nil, uid: UInt32 = 0, deliveries: inout Deliveries) -> Attempt {
        let n = bytes.count
        guard n > 0 else { return .done(.written(0)) }
        // A message is one FUSE request: a later part of a larger write(2) (offset > 0)
        // cannot join it, and a message larger than the pipe never fits.
        if framed && (offset > 0 || n > ring.limit) { return .done(.failed(.messageTooLong)) }
        if !waits {
            overflowingStore(bytes)
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.written(n))
        }
        if liveReaders == 0 { return .done(.failed(.brokenPipe)) }
        // Only a whole write(2) of at most PIPE_BUF is atomic; the kernel's later parts of a
        // large write arrive with offset > 0. A message is always whole.
        let atomic = framed || (offset == 0 && n <= Pipe.atomicWriteLimit)
        // Blocking writers queue behind those already waiting, so none starves.
        let mayGoNow = writeWaiters.isEmpty || nonblocking
        // Readers wait only on an empty ring: while the request's own buffer is valid, its
        // bytes go straight into their replies, in order, and only the rest is buffered.
        let handing = mayGoNow && !framed && !broadcast ? handOffCount(n, atomic: atomic) : 0
        // Without a waiter, a write that would wait changes nothing.
        if waiter == nil && !nonblocking && !(mayGoNow && ring.free >= n - handing) { return .mustWait }
        let taken = handOff(UnsafeRawBufferPointer(rebasing: bytes[..<handing]), deliveries: &deliveries)
        if taken == n {
            notifyPollers(&deliveries)
            return .done(.written(n))
        }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[taken...])
        if mayGoNow && ring.free >= rest.count {
            store(rest)
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.written(n))
        }
        if nonblocking {
            let fits = atomic ? 0 : min(ring.free, rest.count)
            guard fits > 0 else { return .done(.failed(.resourceTemporarilyUnavailable)) }
            store(UnsafeRawBufferPointer(rebasing: rest[..<fits]))
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.written(taken + fits))
        }
        guard let waiter else { return .mustWait }
        if waiter.isInterrupted { return .done(taken > 0 ? .written(taken) : .failed(.interrupted)) }
        // Queue, then let `settle` move what fits: the one place data moves between waiting
        // writers, the ring and waiting readers (it may even complete this write).
        guard let rest = WaitingBytes(copying: rest, budget: budget, uid: uid) else {
            // The writer's share of waiting writes' bytes is full: this one cannot wait.
            notifyPollers(&deliveries)
            return .done(taken > 0 ? .written(taken) : .failed(.noBufferSpace))
        }
        writeWaiters.append(WriteWait(waiter: waiter, handle: handle, data: rest, taken: 0, atomic: atomic, takenBefore: taken))
        settle(&deliveries)
        return .queued
    }

    /// Buffers bytes that fit; with message framing, `bytes` is one whole message.
    /// `counted`: they are written bytes (a ring write counts what it was handed instead).
    mutating func store(_ bytes: UnsafeRawBufferPointer, counted: Bool = true) {
        let start = base + UInt64(ring.count)
        ring.write(bytes)
        if framed {
            if broadcast { broadcastMessages.append(start: start, length: bytes.count) } else { messages.append(bytes.count) }
        }
        if counted { bytesWritten += UInt64(bytes.count) }
        lastWrite = .now()
    }

    /// What a read of up to `max` bytes by `reader` would return, left in place: in message
    /// framing, of its next message only. With broadcast delivery, from the reader's own
    /// position (without one, the newest reader's: where a reader opening now would be).
    func peek(_ max: Int, reader: PipeHandle?) -> [UInt8] {
        guard max > 0 else { return [] }
        guard broadcast else {
            let (first, second) = ring.segments(upTo: framed ? min(max, messages.oldestRemaining ?? 0) : max)
            return Array(first) + Array(second)
        }
        guard let handle = reader.flatMap({ cursors.contains($0) ? $0 : nil }) ?? cursors.handles.max(by: { $0.rawValue < $1.rawValue }),
              let position = cursors.position(of: handle, base: base) else { return [] }
        var limit = min(max, available(to: handle))
        if framed { limit = min(limit, broadcastMessages.remaining(at: position)) }
        let (first, second) = ring.segments(from: Int(position - base), upTo: limit)
        return Array(first) + Array(second)
    }

    /// How many bytes of a write of `n` go straight to waiting readers (the ring is empty
    /// while they wait): up to what they asked for; for an atomic write, only if what they
    /// leave of it fits the ring whole.
    func handOffCount(_ n: Int, atomic: Bool) -> Int {
        guard !readWaiters.isEmpty, ring.isEmpty else { return 0 }
        var wanted = 0
        for wait in readWaiters where wanted < n { wanted += wait.size }
        let count = min(wanted, n)
        return atomic && n - count > ring.free ? 0 : count
    }

    /// Hands `bytes` (counted by `handOffCount`) to waiting readers, oldest first, each up
    /// to its size. Returns the bytes taken.
    mutating func handOff(_ bytes: UnsafeRawBufferPointer, deliveries: inout Deliveries) -> Int {
        guard !bytes.isEmpty else { return 0 }
        var taken = 0
        while taken < bytes.count, !readWaiters.isEmpty {
            let wait = readWaiters.removeFirst()
            let part = UnsafeRawBufferPointer(rebasing: bytes[taken..<min(bytes.count, taken + wait.size)])
            ReadData.lend(part) { wait.waiter.resume(reading: $0) }
            taken += part.count
        }
        bytesWritten += UInt64(taken)
        bytesRead += UInt64(taken)
        lastWrite = .now()
        lastRead = lastWrite
        return taken
    }

    /// Answers a read of at most `size` bytes through `sink`, from the stream or from the
    /// oldest message only, and consumes what it lent.
    ///
    /// A stream read does not stop at what the ring holds while writers wait with bytes
    /// they have already handed over: it takes theirs too, in order, up to `size`, straight
    /// from their requests. To the reader that is the same as reading again at once; it
    /// saves a FUSE round trip per capacity's worth of a large transfer. Writers whose bytes
    /// are all taken complete; the ring is then refilled from those still waiting.
    mutating func give(_ size: Int, deliveries: inout Deliveries, to sink: (ReadData) -> Void) {
        let limit = framed ? min(size, messages.oldestRemaining ?? 0) : size
        let (first, second) = ring.segments(upTo: limit)
        let fromRing = first.count + second.count
        var total = fromRing
        // Waiting writers whose bytes are all lent, and the bytes lent of the next one.
        var completed = 0
        var partial = 0
        withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: ReadData.maximumPieces) { pieces in
            var used = ReadData.place(first, second, into: pieces)
            while !framed, total < limit, used < pieces.count, completed < writeWaiters.count {
                let wait = writeWaiters[completed]
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
            sink(ReadData(pieces: UnsafeBufferPointer(rebasing: pieces[..<used]), count: total))
        }
        ring.discard(fromRing)
        if framed { messages.consume(fromRing) }
        for wait in writeWaiters.prefix(completed) {
            deliveries.resume(wait.waiter, with: .written(wait.takenBefore + wait.data.bytes.count))
        }
        writeWaiters.removeFirst(completed)
        if partial > 0 { writeWaiters[0].taken += partial }
        let direct = total - fromRing
        if direct > 0 {
            bytesWritten += UInt64(direct)
            lastWrite = .now()
        }
        bytesRead += UInt64(total)
        lastRead = .now()
    }

    /// Ring mode: buffers `bytes` whatever the room, discarding (and counting) new bytes
    /// with `overflow=drop` or the oldest with `overflow=overwrite`; messages whole.
    mutating func overflowingStore(_ bytes: UnsafeRawBufferPointer) {
        if broadcast { return evictingStore(bytes) }
        let n = bytes.count
        bytesWritten += UInt64(n)
        switch (config.framing, config.overflow) {
        case (.stream, .drop):
            let fits = min(ring.free, n)
            if fits > 0 { store(UnsafeRawBufferPointer(rebasing: bytes[..<fits]), counted: false) }
            dropped += UInt64(n - fits)
        case (.stream, .overwrite):
            // Only the newest `capacity` bytes can survive.
            let kept = min(n, ring.limit)
            let evicted = max(0, kept - ring.free)
            ring.discard(evicted)
            dropped += UInt64(evicted + (n - kept))
            store(UnsafeRawBufferPointer(rebasing: bytes[(n - kept)...]), counted: false)
        case (.message, .drop):
            if ring.free >= n { store(bytes, counted: false) } else { dropped += UInt64(n) }
        case (.message, .overwrite):
            // Callers refuse messages larger than the capacity; one that got here anyway is
            // dropped whole rather than evicting everything in vain.
            guard n <= ring.limit else { dropped += UInt64(n); break }
            while ring.free < n, let evicted = messages.removeOldest() {
                ring.discard(evicted)
                dropped += UInt64(evicted)
            }
            assert(ring.free >= n, "message lengths do not add up to the bytes buffered")
            if ring.free >= n { store(bytes, counted: false) } else { dropped += UInt64(n) }
        }
    }

    /// Moves data until nobody waiting can proceed: waiting readers take what is buffered,
    /// waiting writers (in order) fill the room that frees up. Afterwards no reader waits
    /// while bytes are buffered, and no writer waits while its next part would fit.
    mutating func settle(_ deliveries: inout Deliveries) {
        var moved = false
        while serveWaitingReaders(&deliveries) || feedWaitingWriters(&deliveries) { moved = true }
        if moved { notifyPollers(&deliveries) }
    }

    /// Hands buffered bytes to waiting readers, oldest first. Returns whether any moved.
    mutating func serveWaitingReaders(_ deliveries: inout Deliveries) -> Bool {
        if broadcast { return serveWaitingBroadcastReaders(&deliveries) }
        var moved = false
        while !ring.isEmpty, !readWaiters.isEmpty {
            let wait = readWaiters.removeFirst()
            give(wait.size, deliveries: &deliveries) { wait.waiter.resume(reading: $0) }
            moved = true
        }
        return moved
    }

    /// Fills free room from waiting writers in order; an atomic one only when it fits whole.
    /// Returns whether any bytes moved.
    mutating func feedWaitingWriters(_ deliveries: inout Deliveries) -> Bool {
        var moved = false
        while var wait = writeWaiters.first {
            let room = ring.free
            if wait.atomic && room < wait.remaining { break }
            let n = min(room, wait.remaining)
            guard n > 0 else { break }
            store(UnsafeRawBufferPointer(rebasing: wait.data.bytes[wait.taken..<(wait.taken + n)]))
            wait.taken += n
            moved = true
            guard wait.remaining == 0 else {
                writeWaiters[0] = wait
                break
            }
            writeWaiters.removeFirst()
            deliveries.resume(wait.waiter, with: .written(wait.written))
        }
        return moved
    }
}
