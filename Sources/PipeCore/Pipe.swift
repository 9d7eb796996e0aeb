import Synchronization
import SystemPackage

/// One live named pipe: the seed driver's resource context.
///
/// Created by the first open of a name and dropped by the registry after the last release.
/// All its decisions follow fifo(7) and pipe(7): who may proceed, who waits, who is woken
/// and what a read returns. Operations decide under `state`'s lock and hand the wake-ups
/// they cause to `Deliveries`, which answers them after the lock is released.
///
/// Lock order: the registry's lock before a pipe's, never the reverse.
public final class Pipe: Sendable {
    /// Writes of at most this many bytes are never interleaved with other writers' data.
    public static let atomicWriteLimit = 4096   // PIPE_BUF

    let state: Mutex<PipeState>

    init(config: PipeConfig) {
        state = Mutex(PipeState(config: config))
    }

    /// Figures for `stat` and `ls -l`.
    public struct Status: Sendable, Equatable {
        public var buffered: Int
        public var capacity: Int
        public var readers: Int
        public var writers: Int
        public var bytesWritten: UInt64
        public var bytesRead: UInt64
        public var lastRead: Timestamp
        public var lastWrite: Timestamp
        public var created: Timestamp
    }

    public var status: Status { state.withLock { $0.status } }

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

    /// Answers every waiter (shutdown); returns the handles of opens that never completed.
    func releaseAllWaiters(deliveries: inout Deliveries) -> [PipeHandle] {
        state.withLock { $0.releaseAllWaiters(deliveries: &deliveries) }
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
        /// The request's bytes.
        let data: [UInt8]
        /// How many of them the pipe has taken.
        var taken: Int
        /// A write of at most PIPE_BUF bytes goes in whole or not at all.
        let atomic: Bool
        var remaining: Int { data.count - taken }
    }
    /// What an interrupted waiter was doing.
    enum Cancelled { case open(PipeHandle), read, write }

    let ring: ByteRing
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
    let created = Timestamp.now()
    var lastRead: Timestamp
    var lastWrite: Timestamp

    init(config: PipeConfig) {
        ring = ByteRing(limit: config.capacity)
        lastRead = created
        lastWrite = created
    }

    var status: Pipe.Status {
        .init(buffered: ring.count, capacity: ring.limit, readers: readers, writers: writers,
              bytesWritten: bytesWritten, bytesRead: bytesRead, lastRead: lastRead, lastWrite: lastWrite, created: created)
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
            if writers == 0 && nonblocking {
                // POLLHUP stays off until a writer has come and gone (pipe_poll).
                hangUpVersion = writerOpens
            }
            mustWaitForPartner = writers == 0 && !nonblocking
        case .write:
            if nonblocking && readers == 0 { return (.done(.failed(.noSuchAddressOrDevice)), 0) }
            writers += 1
            writerOpens += 1
            completeOpenWaiters(for: .read, deliveries: &deliveries)
            mustWaitForPartner = readers == 0
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
        guard mustWaitForPartner else { return (.done(.opened(handle)), hangUpVersion) }
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
                    deliveries.resume(wait.waiter, with: wait.taken > 0 ? .written(wait.taken) : .failed(.brokenPipe))
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
            deliveries.resume(waiter, with: wait.taken > 0 ? .written(wait.taken) : .failed(.interrupted))
            // The next writer in line may fit now.
            settle(&deliveries)
            return .write
        }
        return nil
    }

    /// Shutdown: answers every waiter and closes the pipe (see `closed`).
    mutating func releaseAllWaiters(deliveries: inout Deliveries) -> [PipeHandle] {
        closed = true
        let abandoned = openWaiters.map(\.handle)
        for wait in openWaiters { deliveries.resume(wait.waiter, with: .failed(.noSuchAddressOrDevice)) }
        for wait in readWaiters { deliveries.resume(wait.waiter, with: .data([])) }
        for wait in writeWaiters {
            deliveries.resume(wait.waiter, with: wait.taken > 0 ? .written(wait.taken) : .failed(.brokenPipe))
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
        if !ring.isEmpty {
            let bytes = ring.read(maxCount: size)
            bytesRead += UInt64(bytes.count)
            lastRead = .now()
            settle(&deliveries)
            notifyPollers(&deliveries)
            return .done(.data(bytes))
        }
        if liveWriters == 0 { return .done(.data([])) }
        // A request past offset 0 continues a read(2) whose earlier part was answered in
        // full (the kernel splits large reads); a pipe read returns what it has, so end here.
        if offset > 0 { return .done(.data([])) }
        if nonblocking { return .done(.failed(.resourceTemporarilyUnavailable)) }
        guard let waiter else { return .mustWait }
        if waiter.isInterrupted { return .done(.failed(.interrupted)) }
        readWaiters.append(ReadWait(waiter: waiter, size: size))
        return .queued
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer, offset: Int64, nonblocking: Bool, waiter: (any PipeWaiter)?,
                        deliveries: inout Deliveries) -> Attempt {
        if liveReaders == 0 { return .done(.failed(.brokenPipe)) }
        let n = bytes.count
        guard n > 0 else { return .done(.written(0)) }
        // Only a whole write(2) of at most PIPE_BUF is atomic; the kernel's later parts of a
        // large write arrive with offset > 0.
        let atomic = offset == 0 && n <= Pipe.atomicWriteLimit
        // Blocking writers queue behind those already waiting, so none starves.
        let mayGoNow = writeWaiters.isEmpty || nonblocking
        if mayGoNow && ring.free >= n {
            append(bytes, deliveries: &deliveries)
            return .done(.written(n))
        }
        if nonblocking {
            let fits = atomic ? 0 : min(ring.free, n)
            guard fits > 0 else { return .done(.failed(.resourceTemporarilyUnavailable)) }
            append(UnsafeRawBufferPointer(rebasing: bytes[..<fits]), deliveries: &deliveries)
            return .done(.written(fits))
        }
        guard let waiter else { return .mustWait }
        if waiter.isInterrupted { return .done(.failed(.interrupted)) }
        // Queue first, then let `settle` move what fits: the one place data moves between
        // waiting writers, the ring and waiting readers (it may even complete this write).
        writeWaiters.append(WriteWait(waiter: waiter, data: Array(bytes), taken: 0, atomic: atomic))
        settle(&deliveries)
        return .queued
    }

    /// Buffers bytes that fit and wakes readers.
    private mutating func append(_ bytes: UnsafeRawBufferPointer, deliveries: inout Deliveries) {
        ring.write(bytes)
        bytesWritten += UInt64(bytes.count)
        lastWrite = .now()
        settle(&deliveries)
        notifyPollers(&deliveries)
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
            let bytes = ring.read(maxCount: wait.size)
            bytesRead += UInt64(bytes.count)
            lastRead = .now()
            deliveries.resume(wait.waiter, with: .data(bytes))
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
            wait.data.withUnsafeBytes { ring.write(UnsafeRawBufferPointer(rebasing: $0[wait.taken..<(wait.taken + n)])) }
            bytesWritten += UInt64(n)
            lastWrite = .now()
            wait.taken += n
            moved = true
            guard wait.remaining == 0 else {
                writeWaiters[0] = wait
                break
            }
            writeWaiters.removeFirst()
            deliveries.resume(wait.waiter, with: .written(wait.taken))
        }
        return moved
    }

    // MARK: poll

    mutating func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64,
                       notifier: (any PollNotifier)?) -> PollEvents {
        if let notifier { pollers[handle] = notifier }
        return readiness(access: access, hangUpVersion: hangUpVersion)
    }

    /// pipe_poll's answer for one open.
    func readiness(access: AccessMode, hangUpVersion: UInt64) -> PollEvents {
        var events: PollEvents = []
        if access.reads {
            if !ring.isEmpty { events.formUnion([.input, .readNormal]) }
            if liveWriters == 0 && hangUpVersion != writerOpens { events.insert(.hangUp) }
        }
        if access.writes {
            // Writable when a PIPE_BUF write fits (the kernel: when a page slot is free).
            if ring.free >= min(Pipe.atomicWriteLimit, ring.limit) { events.formUnion([.output, .writeNormal]) }
            if liveReaders == 0 { events.insert(.error) }
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
