import SystemPackage

/// Reads and writes: what moves between writers, the ring and readers.
extension PipeState {
    mutating func read(size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
                       deliveries: inout Deliveries) -> Attempt {
        guard size > 0 else { return .done(.data([])) }
        // A request past offset 0 continues a read(2) whose earlier part was answered in
        // full (the kernel splits large reads). A pipe read returns what it has and a
        // message read one message: never wait, and never start a second message.
        if offset > 0 && (framed || ring.isEmpty) { return .done(.data([])) }
        if !ring.isEmpty {
            let bytes = take(size, deliveries: &deliveries)
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.data(bytes))
        }
        if !waits || liveWriters == 0 { return .done(.data([])) }
        if nonblocking { return .done(.failed(.resourceTemporarilyUnavailable)) }
        guard let waiter else { return .mustWait }
        if waiter.isInterrupted { return .done(.failed(.interrupted)) }
        readWaiters.append(ReadWait(waiter: waiter, size: size))
        return .queued
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
                        deliveries: inout Deliveries) -> Attempt {
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
        if mayGoNow && ring.free >= n {
            store(bytes)
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.written(n))
        }
        if nonblocking {
            let fits = atomic ? 0 : min(ring.free, n)
            guard fits > 0 else { return .done(.failed(.resourceTemporarilyUnavailable)) }
            store(UnsafeRawBufferPointer(rebasing: bytes[..<fits]))
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.written(fits))
        }
        guard let waiter else { return .mustWait }
        if waiter.isInterrupted { return .done(.failed(.interrupted)) }
        // Readers wait only on an empty ring: while the request's own buffer is valid, copy
        // it straight into their replies, in order, and keep only the rest.
        var taken = 0
        if mayGoNow && !atomic {
            assert(ring.isEmpty || readWaiters.isEmpty, "a reader waits while bytes are buffered")
            while taken < n, !readWaiters.isEmpty {
                let wait = readWaiters.removeFirst()
                let part = min(wait.size, n - taken)
                deliveries.resume(wait.waiter, with: .data(Array(bytes[taken..<(taken + part)])))
                taken += part
                bytesWritten += UInt64(part)
                bytesRead += UInt64(part)
                lastWrite = .now()
                lastRead = lastWrite
            }
            if taken == n {
                notifyPollers(&deliveries)
                return .done(.written(n))
            }
        }
        // Queue, then let `settle` move what fits: the one place data moves between waiting
        // writers, the ring and waiting readers (it may even complete this write).
        guard let rest = WaitingBytes(copying: UnsafeRawBufferPointer(rebasing: bytes[taken...]), budget: budget) else {
            // The mount holds as many waiting writes' bytes as it may: this one cannot wait.
            notifyPollers(&deliveries)
            return .done(taken > 0 ? .written(taken) : .failed(.noBufferSpace))
        }
        writeWaiters.append(WriteWait(waiter: waiter, data: rest, taken: 0, atomic: atomic, takenBefore: taken))
        settle(&deliveries)
        return .queued
    }

    /// Buffers bytes that fit; with message framing, `bytes` is one whole message.
    /// `counted`: they are written bytes (a ring write counts what it was handed instead).
    mutating func store(_ bytes: UnsafeRawBufferPointer, counted: Bool = true) {
        ring.write(bytes)
        if framed { messages.append(bytes.count) }
        if counted { bytesWritten += UInt64(bytes.count) }
        lastWrite = .now()
    }

    /// A read of at most `size` bytes: from the stream, or from the oldest message only.
    ///
    /// A stream read does not stop at what the ring holds while writers wait with bytes
    /// they have already handed over: it lets them refill the ring and takes those too, in
    /// order, up to `size`. To the reader that is the same as reading again at once; it
    /// saves a FUSE round trip per capacity's worth of a large transfer.
    mutating func take(_ size: Int, deliveries: inout Deliveries) -> [UInt8] {
        let limit = framed ? min(size, messages.oldestRemaining ?? 0) : size
        let capacity = writeWaiters.isEmpty ? min(limit, ring.count) : limit
        var bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            let out = UnsafeMutableRawBufferPointer(buffer)
            count = ring.read(into: out)
            while !framed, count < capacity, !writeWaiters.isEmpty, feedWaitingWriters(&deliveries) {
                count += ring.read(into: UnsafeMutableRawBufferPointer(rebasing: out[count...]))
            }
        }
        if framed { messages.consume(bytes.count) }
        if bytes.capacity > 2 * bytes.count + 4096 { bytes = Array(bytes) }   // do not keep a large, mostly empty buffer
        bytesRead += UInt64(bytes.count)
        lastRead = .now()
        return bytes
    }

    /// Ring mode: buffers `bytes` whatever the room, discarding (and counting) new bytes
    /// with `overflow=drop` or the oldest with `overflow=overwrite`; messages whole.
    mutating func overflowingStore(_ bytes: UnsafeRawBufferPointer) {
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
        var moved = false
        while !ring.isEmpty, !readWaiters.isEmpty {
            let wait = readWaiters.removeFirst()
            deliveries.resume(wait.waiter, with: .data(take(wait.size, deliveries: &deliveries)))
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
            wait.data.bytes.withUnsafeBytes { store(UnsafeRawBufferPointer(rebasing: $0[wait.taken..<(wait.taken + n)])) }
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
