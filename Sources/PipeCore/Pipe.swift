import Synchronization
import SystemPackage

/// One live named pipe: the seed driver's resource context.
///
/// Created by the first open of a name and dropped by the registry after the last release.
/// All its decisions are here: who may proceed, who waits, who is woken and what a read
/// returns, in `fifo` mode by fifo(7) and pipe(7), in `ring` mode by the seed driver
/// (nothing waits; what does not fit overflows, counted). Operations decide under
/// `state`'s lock and hand the wake-ups they cause to `Deliveries`, which answers them
/// after the lock is released.
///
/// Lock order: the registry's lock before a pipe's, never the reverse.
public final class Pipe: Sendable {
    /// Writes of at most this many bytes are never interleaved with other writers' data.
    public static let atomicWriteLimit = 4096   // PIPE_BUF

    let state: Mutex<PipeState>

    init(config: PipeConfig) {
        state = Mutex(PipeState(config: config))
    }

    /// A pipe's settings and figures at one moment.
    public struct Status: Sendable, Equatable {
        public var config: PipeConfig
        public var buffered: Int
        public var readers: Int
        public var writers: Int
        /// Bytes writers handed over: the sum of the counts write(2) reported.
        public var bytesWritten: UInt64
        public var bytesRead: UInt64
        /// Bytes discarded by overflow (ring mode): new ones dropped or old ones overwritten.
        /// Always `buffered == bytesWritten - bytesRead - dropped`.
        public var dropped: UInt64
        public var lastRead: Timestamp
        public var lastWrite: Timestamp
        public var created: Timestamp
    }

    public var status: Status { state.withLock { $0.status } }

    /// For tests: the invariants of the buffer, the message queue and the counters.
    public var isConsistent: Bool { state.withLock { $0.isConsistent } }

    /// One setting of a live pipe.
    public enum Setting: Sendable, Equatable {
        case capacity(Int)
        case mode(PipeConfig.Mode)
        case overflow(PipeConfig.Overflow)
        case framing(PipeConfig.Framing)
    }

    /// Changes a setting at once and wakes whoever that concerns. Throws EINVAL for a
    /// capacity out of range, EBUSY for a capacity below what is buffered or a framing
    /// change while bytes are buffered or writers wait.
    public func apply(_ setting: Setting) throws(Errno) {
        var deliveries = Deliveries()
        let error = state.withLock { $0.apply(setting, deliveries: &deliveries) }
        deliveries.deliver()
        if let error { throw error }
    }

    // MARK: Opening and closing (called by the registry, under its lock)

    /// Counts a new open and decides whether it completes now, fails or waits for a partner.
    func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, waiter: any PipeWaiter,
              deliveries: inout Deliveries) -> (Attempt, hangUpVersion: UInt64) {
        state.withLock { $0.open(handle, access: access, nonblocking: nonblocking, waiter: waiter, deliveries: &deliveries) }
    }

    /// The last descriptor of an open was closed (FUSE `release`).
    func close(_ handle: PipeHandle, access: AccessMode, deliveries: inout Deliveries) {
        state.withLock { $0.close(handle, access: access, deliveries: &deliveries) }
    }

    /// Withdraws an interrupted waiter. Returns what it was waiting in, or nil if it was no longer waiting.
    func cancel(_ waiter: any PipeWaiter, deliveries: inout Deliveries) -> PipeState.Cancelled? {
        state.withLock { $0.cancel(waiter, deliveries: &deliveries) }
    }

    /// Answers every waiter and stops all waiting (shutdown); returns the handles of opens that never completed.
    func closeForShutdown(deliveries: inout Deliveries) -> [PipeHandle] {
        state.withLock { $0.closeForShutdown(deliveries: &deliveries) }
    }

    // MARK: Data (called with no registry lock held)

    func read(size: Int, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?) -> Attempt {
        var deliveries = Deliveries()
        let attempt = state.withLock {
            $0.read(size: size, offset: offset, nonblocking: nonblocking, waiter: waiter, deliveries: &deliveries)
        }
        deliveries.deliver()
        return attempt
    }

    func write(_ bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?) -> Attempt {
        let borrowed = BorrowedBytes(bytes)
        var deliveries = Deliveries()
        let attempt = state.withLock {
            $0.write(borrowed.bytes, offset: offset, nonblocking: nonblocking, waiter: waiter, deliveries: &deliveries)
        }
        deliveries.deliver()
        return attempt
    }

    func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64, notifier: (any PollNotifier)?) -> PollEvents {
        state.withLock { $0.poll(handle, access: access, hangUpVersion: hangUpVersion, notifier: notifier) }
    }
}

/// A write's payload, lent to the locked state for the duration of one call.
/// Unchecked: the state copies from it and never keeps the pointer.
private struct BorrowedBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}

/// The state behind a pipe's lock.
struct PipeState: ~Copyable {
    struct OpenWait { let waiter: any PipeWaiter; let handle: PipeHandle; let access: AccessMode }
    struct ReadWait { let waiter: any PipeWaiter; let size: Int }
    struct WriteWait {
        let waiter: any PipeWaiter
        /// The request's bytes not taken before it was queued.
        let data: [UInt8]
        /// How many of `data` the pipe has taken.
        var taken: Int
        /// Goes in whole or not at all: a write of at most PIPE_BUF bytes, or a message.
        let atomic: Bool
        /// Bytes of the request the pipe took before it was queued.
        var takenBefore = 0
        var remaining: Int { data.count - taken }
        /// The count to report: everything the pipe has taken of the request.
        var written: Int { takenBefore + taken }
    }
    /// What an interrupted waiter was doing.
    enum Cancelled { case open(PipeHandle), read, write }

    let ring: ByteRing
    /// The settings; `apply` keeps `config.capacity` equal to `ring.limit`.
    var config: PipeConfig
    /// Message boundaries, with `framing == .message`.
    var messages = MessageQueue()
    var readers = 0
    var writers = 0
    /// The daemon is shutting down: nobody waits any more, as if no peer were left.
    var closed = false
    /// Readers and writers as decisions see them (none once closed).
    var liveReaders: Int { closed ? 0 : readers }
    var liveWriters: Int { closed ? 0 : writers }
    /// Opens of each end ever made (the kernel's r_counter and w_counter): a waiting open
    /// completes when its partner's counter moves, and POLLHUP needs a writer seen since open.
    var readerOpens: UInt64 = 0
    var writerOpens: UInt64 = 0
    var openWaiters: [OpenWait] = []
    var readWaiters: [ReadWait] = []
    var writeWaiters: [WriteWait] = []
    /// At most one pending poll notification per open.
    var pollers: [PipeHandle: any PollNotifier] = [:]
    var bytesWritten: UInt64 = 0
    var bytesRead: UInt64 = 0
    var dropped: UInt64 = 0
    let created = Timestamp.now()
    var lastRead: Timestamp
    var lastWrite: Timestamp

    init(config: PipeConfig) {
        ring = ByteRing(limit: config.capacity)
        self.config = config
        lastRead = created
        lastWrite = created
    }

    var waits: Bool { config.mode == .fifo }
    var framed: Bool { config.framing == .message }

    var status: Pipe.Status {
        .init(config: config, buffered: ring.count, readers: readers, writers: writers,
              bytesWritten: bytesWritten, bytesRead: bytesRead, dropped: dropped,
              lastRead: lastRead, lastWrite: lastWrite, created: created)
    }

    /// For tests: the ring's invariants, message lengths that add up to the bytes
    /// buffered, and counters that account for every byte.
    var isConsistent: Bool {
        ring.verifyInvariants() && config.capacity == ring.limit && (!framed || messages.unreadBytes == ring.count)
            && UInt64(ring.count) == bytesWritten - bytesRead - dropped
    }

    // MARK: open / close

    mutating func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, waiter: any PipeWaiter,
                       deliveries: inout Deliveries) -> (Attempt, hangUpVersion: UInt64) {
        var hangUpVersion: UInt64 = 0
        let mustWaitForPartner: Bool
        switch access {
        case .read:
            readers += 1
            readerOpens += 1
            completeOpenWaiters(for: .write, deliveries: &deliveries)
            if liveWriters == 0 && nonblocking {
                // POLLHUP stays off until a writer has come and gone (pipe_poll).
                hangUpVersion = writerOpens
            }
            mustWaitForPartner = liveWriters == 0 && !nonblocking
        case .write:
            if waits && nonblocking && liveReaders == 0 { return (.done(.failed(.noSuchAddressOrDevice)), 0) }
            writers += 1
            writerOpens += 1
            completeOpenWaiters(for: .read, deliveries: &deliveries)
            mustWaitForPartner = liveReaders == 0
        case .readWrite:
            readers += 1
            writers += 1
            readerOpens += 1
            writerOpens += 1
            completeOpenWaiters(for: .read, deliveries: &deliveries)
            completeOpenWaiters(for: .write, deliveries: &deliveries)
            mustWaitForPartner = false
        }
        notifyPollers(&deliveries)
        guard mustWaitForPartner && waits else { return (.done(.opened(handle)), hangUpVersion) }
        if waiter.isInterrupted {
            dropEnds(of: access, deliveries: &deliveries)
            return (.done(.failed(.interrupted)), 0)
        }
        openWaiters.append(OpenWait(waiter: waiter, handle: handle, access: access))
        return (.queued, 0)
    }

    /// Completes the opens of `access` that wait for the other end to appear.
    private mutating func completeOpenWaiters(for access: AccessMode, deliveries: inout Deliveries) {
        guard !openWaiters.isEmpty else { return }
        openWaiters.removeAll { wait in
            guard wait.access == access else { return false }
            deliveries.resume(wait.waiter, with: .opened(wait.handle))
            return true
        }
    }

    mutating func close(_ handle: PipeHandle, access: AccessMode, deliveries: inout Deliveries) {
        pollers[handle] = nil
        dropEnds(of: access, deliveries: &deliveries)
    }

    /// One reader and/or writer fewer; wakes who that concerns.
    private mutating func dropEnds(of access: AccessMode, deliveries: inout Deliveries) {
        if access.reads {
            readers -= 1
            if readers == 0 {
                // No reader left: waiting writers end with what they wrote, or EPIPE.
                for wait in writeWaiters {
                    deliveries.resume(wait.waiter, with: wait.written > 0 ? .written(wait.written) : .failed(.brokenPipe))
                }
                writeWaiters.removeAll()
            }
        }
        if access.writes {
            writers -= 1
            if writers == 0 {
                // No writer left: waiting readers (the ring is empty) see end of file.
                for wait in readWaiters { deliveries.resume(wait.waiter, with: .data([])) }
                readWaiters.removeAll()
            }
        }
        assert(readers >= 0 && writers >= 0)
        notifyPollers(&deliveries)
    }

    mutating func cancel(_ waiter: any PipeWaiter, deliveries: inout Deliveries) -> Cancelled? {
        if let i = openWaiters.firstIndex(where: { $0.waiter === waiter }) {
            let wait = openWaiters.remove(at: i)
            dropEnds(of: wait.access, deliveries: &deliveries)
            deliveries.resume(waiter, with: .failed(.interrupted))
            return .open(wait.handle)
        }
        if let i = readWaiters.firstIndex(where: { $0.waiter === waiter }) {
            readWaiters.remove(at: i)
            deliveries.resume(waiter, with: .failed(.interrupted))
            return .read
        }
        if let i = writeWaiters.firstIndex(where: { $0.waiter === waiter }) {
            let wait = writeWaiters.remove(at: i)
            // pipe_write: a signal after part was taken returns that part's count.
            deliveries.resume(waiter, with: wait.written > 0 ? .written(wait.written) : .failed(.interrupted))
            // The next writer in line may fit now.
            settle(&deliveries)
            return .write
        }
        return nil
    }

    mutating func closeForShutdown(deliveries: inout Deliveries) -> [PipeHandle] {
        closed = true
        let abandoned = openWaiters.map(\.handle)
        for wait in openWaiters { deliveries.resume(wait.waiter, with: .failed(.noSuchAddressOrDevice)) }
        for wait in readWaiters { deliveries.resume(wait.waiter, with: .data([])) }
        for wait in writeWaiters {
            deliveries.resume(wait.waiter, with: wait.written > 0 ? .written(wait.written) : .failed(.brokenPipe))
        }
        openWaiters.removeAll()
        readWaiters.removeAll()
        writeWaiters.removeAll()
        notifyPollers(&deliveries)
        return abandoned
    }

    // MARK: read / write

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
        writeWaiters.append(WriteWait(waiter: waiter, data: Array(bytes[taken...]), taken: 0, atomic: atomic,
                                      takenBefore: taken))
        settle(&deliveries)
        return .queued
    }

    /// Buffers bytes that fit; with message framing, `bytes` is one whole message.
    /// `counted`: they are written bytes (a ring write counts what it was handed instead).
    private mutating func store(_ bytes: UnsafeRawBufferPointer, counted: Bool = true) {
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
    private mutating func take(_ size: Int, deliveries: inout Deliveries) -> [UInt8] {
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
    private mutating func overflowingStore(_ bytes: UnsafeRawBufferPointer) {
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
            while ring.free < n {
                let evicted = messages.removeOldest()
                ring.discard(evicted)
                dropped += UInt64(evicted)
            }
            store(bytes, counted: false)
        }
    }

    /// Moves data until nobody waiting can proceed: waiting readers take what is buffered,
    /// waiting writers (in order) fill the room that frees up. Afterwards no reader waits
    /// while bytes are buffered, and no writer waits while its next part would fit.
    private mutating func settle(_ deliveries: inout Deliveries) {
        var moved = false
        while serveWaitingReaders(&deliveries) || feedWaitingWriters(&deliveries) { moved = true }
        if moved { notifyPollers(&deliveries) }
    }

    /// Hands buffered bytes to waiting readers, oldest first. Returns whether any moved.
    private mutating func serveWaitingReaders(_ deliveries: inout Deliveries) -> Bool {
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
    private mutating func feedWaitingWriters(_ deliveries: inout Deliveries) -> Bool {
        var moved = false
        while var wait = writeWaiters.first {
            let room = ring.free
            if wait.atomic && room < wait.remaining { break }
            let n = min(room, wait.remaining)
            guard n > 0 else { break }
            wait.data.withUnsafeBytes { store(UnsafeRawBufferPointer(rebasing: $0[wait.taken..<(wait.taken + n)])) }
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

    // MARK: settings

    mutating func apply(_ setting: Pipe.Setting, deliveries: inout Deliveries) -> Errno? {
        switch setting {
        case .capacity(let capacity):
            guard PipeConfig.validCapacities.contains(capacity) else { return .invalidArgument }
            guard ring.setLimit(capacity) else { return .resourceBusy }
            config.capacity = capacity
            settle(&deliveries)   // more room lets waiting writers in
        case .mode(let mode):
            config.mode = mode
            if mode == .ring { releaseWaitersForRing(&deliveries) }
        case .overflow(let overflow):
            config.overflow = overflow
        case .framing(let framing):
            guard framing != config.framing else { return nil }
            // Boundaries of bytes already buffered, or of queued writes, would be invented.
            guard ring.isEmpty && writeWaiters.isEmpty else { return .resourceBusy }
            config.framing = framing
            messages = MessageQueue()
        }
        notifyPollers(&deliveries)
        return nil
    }

    /// Switching to ring mode: nothing waits any more. Opens complete, reads take what is
    /// there (or nothing), writes overflow like any ring write and report their full length.
    private mutating func releaseWaitersForRing(_ deliveries: inout Deliveries) {
        for wait in openWaiters { deliveries.resume(wait.waiter, with: .opened(wait.handle)) }
        openWaiters.removeAll()
        for wait in writeWaiters {
            wait.data.withUnsafeBytes { overflowingStore(UnsafeRawBufferPointer(rebasing: $0[wait.taken...])) }
            deliveries.resume(wait.waiter, with: .written(wait.takenBefore + wait.data.count))
        }
        writeWaiters.removeAll()
        for wait in readWaiters {
            deliveries.resume(wait.waiter, with: .data(ring.isEmpty ? [] : take(wait.size, deliveries: &deliveries)))
        }
        readWaiters.removeAll()
    }

    // MARK: poll

    mutating func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64,
                       notifier: (any PollNotifier)?) -> PollEvents {
        if let notifier { pollers[handle] = notifier }
        return readiness(access: access, hangUpVersion: hangUpVersion)
    }

    /// pipe_poll's answer for one open; in ring mode writes never wait and nobody hangs up.
    func readiness(access: AccessMode, hangUpVersion: UInt64) -> PollEvents {
        var events: PollEvents = []
        if access.reads {
            if !ring.isEmpty { events.formUnion([.input, .readNormal]) }
            if waits && liveWriters == 0 && hangUpVersion != writerOpens { events.insert(.hangUp) }
        }
        if access.writes {
            // Writable when a PIPE_BUF write fits (the kernel: when a page slot is free).
            if !waits || ring.free >= min(Pipe.atomicWriteLimit, ring.limit) { events.formUnion([.output, .writeNormal]) }
            if waits && liveReaders == 0 { events.insert(.error) }
        }
        return events
    }

    /// Something changed that may change readiness: tell every poller once.
    private mutating func notifyPollers(_ deliveries: inout Deliveries) {
        guard !pollers.isEmpty else { return }
        deliveries.notify(pollers.values)
        pollers.removeAll()
    }
}
