import SystemPackage

/// The state behind a pipe's lock.
struct PipeState: ~Copyable {
    struct OpenWait { let waiter: any PipeWaiter; let handle: PipeHandle; let access: AccessMode }
    struct ReadWait { let waiter: any PipeWaiter; let size: Int; var handle: PipeHandle? = nil }
    struct WriteWait {
        let waiter: any PipeWaiter
        /// The open the write came through (for `npfs status --clients`).
        var handle: PipeHandle? = nil
        /// The request's bytes not taken before it was queued, charged to the mount's budget.
        let data: WaitingBytes
        /// How many of `data` the pipe has taken.
        var taken: Int
        /// Goes in whole or not at all: a write of at most PIPE_BUF bytes, or a message.
        let atomic: Bool
        /// Bytes of the request the pipe took before it was queued.
        var takenBefore = 0
        var remaining: Int { data.bytes.count - taken }
        /// The count to report: everything the pipe has taken of the request.
        var written: Int { takenBefore + taken }
    }
    /// What an interrupted waiter was doing.
    enum Cancelled { case open(PipeHandle), read, write }
    /// Why a waiter is withdrawn: a signal (EINTR, as pipe(7)), or an open's timeout
    /// (ETIMEDOUT, and the open leaves no trace, not even in the open counters).
    enum Withdrawal: Sendable { case interrupted, timedOut }

    let ring: ByteRing
    /// The mount's budget for the bytes of waiting writes.
    let budget: ByteBudget
    /// The settings; `apply` keeps `config.capacity` equal to `ring.limit`.
    var config: PipeConfig
    var ownership: Ownership
    /// Message boundaries, with `framing == .message` (shared delivery).
    var messages = MessageQueue()
    /// The opens that read (waiting ones too): broadcast gives each a cursor.
    var readerHandles: Set<PipeHandle> = []
    /// Broadcast delivery: each reader's position in the stream.
    var cursors = BroadcastCursors()
    /// Broadcast delivery: the stream position of the ring's oldest byte, the slowest
    /// reader's (shared delivery keeps no positions and leaves it as it is).
    var base: UInt64 = 0
    /// Broadcast delivery with message framing: the buffered messages.
    var broadcastMessages = BroadcastMessages()
    /// Broadcast delivery: which buffered bytes some reader has read.
    var readMarks = ReadMarks()
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

    init(config: PipeConfig, ownership: Ownership, budget: ByteBudget) {
        ring = ByteRing(limit: config.capacity)
        self.budget = budget
        self.config = config
        self.ownership = ownership
        lastRead = created
        lastWrite = created
    }

    var waits: Bool { config.mode == .fifo }
    var framed: Bool { config.framing == .message }
    var broadcast: Bool { config.delivery == .broadcast }

    /// What each open of the pipe waits for now.
    var waitingOpens: [PipeHandle: PipeClient.Waiting] {
        var waiting: [PipeHandle: PipeClient.Waiting] = [:]
        for wait in openWaiters { waiting[wait.handle] = .open }
        for wait in readWaiters { if let handle = wait.handle { waiting[handle] = .read } }
        for wait in writeWaiters { if let handle = wait.handle { waiting[handle] = .write } }
        return waiting
    }

    var status: Pipe.Status {
        .init(config: config, ownership: ownership, buffered: ring.count, readers: readers, writers: writers,
              bytesWritten: bytesWritten, bytesRead: bytesRead, dropped: dropped, allocated: ring.allocatedBytes + messages.allocatedBytes,
              lastRead: lastRead, lastWrite: lastWrite, created: created)
    }

    /// For tests: the ring's invariants, message lengths that add up to the bytes
    /// buffered, and counters that account for every byte.
    var isConsistent: Bool {
        ring.verifyInvariants() && config.capacity == ring.limit
            && (!framed || (broadcast ? broadcastMessages.bytes(from: base) == ring.count : messages.unreadBytes == ring.count))
            && UInt64(ring.count) == bytesWritten - bytesRead - dropped
            && cursors.isConsistent(end: base + UInt64(ring.count))
            && (!broadcast || Set(cursors.handles) == readerHandles)
    }

    // MARK: open / close

    /// An open decides first and only then changes the pipe: one that fails (ENXIO) or is
    /// interrupted before it would wait leaves no trace (no end counted, no reader kept).
    mutating func open(_ handle: PipeHandle, access: AccessMode, nonblocking: Bool, waiter: any PipeWaiter,
                       deliveries: inout Deliveries) -> (Attempt, hangUpVersion: UInt64) {
        let mustWaitForPartner: Bool
        switch access {
        case .read: mustWaitForPartner = waits && liveWriters == 0 && !nonblocking
        case .write:
            if waits && nonblocking && liveReaders == 0 { return (.done(.failed(.noSuchAddressOrDevice)), 0) }
            mustWaitForPartner = waits && liveReaders == 0
        case .readWrite: mustWaitForPartner = false
        }
        if mustWaitForPartner && waiter.isInterrupted { return (.done(.failed(.interrupted)), 0) }
        // POLLHUP stays off until a writer has come and gone (pipe_poll).
        let hangUpVersion = access == .read && liveWriters == 0 && nonblocking ? writerOpens : 0
        if access.reads {
            addReader(handle)
            readers += 1
            readerOpens += 1
        }
        if access.writes {
            writers += 1
            writerOpens += 1
        }
        if access.writes { completeOpenWaiters(for: .read, deliveries: &deliveries) }
        if access.reads { completeOpenWaiters(for: .write, deliveries: &deliveries) }
        notifyPollers(&deliveries)
        guard mustWaitForPartner else { return (.done(.opened(handle)), hangUpVersion) }
        openWaiters.append(OpenWait(waiter: waiter, handle: handle, access: access))
        return (.queued, 0)
    }

    /// Completes the opens of `access` that wait for the other end to appear.
    mutating func completeOpenWaiters(for access: AccessMode, deliveries: inout Deliveries) {
        guard !openWaiters.isEmpty else { return }
        openWaiters.removeAll { wait in
            guard wait.access == access else { return false }
            deliveries.resume(wait.waiter, with: .opened(wait.handle))
            return true
        }
    }

    mutating func close(_ handle: PipeHandle, access: AccessMode, deliveries: inout Deliveries) {
        pollers[handle] = nil
        removeReader(handle, deliveries: &deliveries)
        dropEnds(of: access, deliveries: &deliveries)
    }

    /// One reader and/or writer fewer; wakes who that concerns.
    mutating func dropEnds(of access: AccessMode, deliveries: inout Deliveries) {
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

    mutating func cancel(_ waiter: any PipeWaiter, because reason: Withdrawal, deliveries: inout Deliveries) -> Cancelled? {
        if let i = openWaiters.firstIndex(where: { $0.waiter === waiter }) {
            let wait = openWaiters.remove(at: i)
            removeReader(wait.handle, deliveries: &deliveries)
            if reason == .timedOut {
                // Nobody saw this open: a partner would have completed it.
                if wait.access.reads { readerOpens -= 1 }
                if wait.access.writes { writerOpens -= 1 }
            }
            dropEnds(of: wait.access, deliveries: &deliveries)
            deliveries.resume(waiter, with: .failed(reason == .timedOut ? .timedOut : .interrupted))
            return .open(wait.handle)
        }
        guard reason == .interrupted else { return nil }
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
        let abandoned = failWaitingOpens(deliveries: &deliveries)
        for wait in readWaiters { deliveries.resume(wait.waiter, with: .data([])) }
        for wait in writeWaiters {
            deliveries.resume(wait.waiter, with: wait.written > 0 ? .written(wait.written) : .failed(.brokenPipe))
        }
        readWaiters.removeAll()
        writeWaiters.removeAll()
        notifyPollers(&deliveries)
        return abandoned
    }

    /// Fails every waiting open ENXIO (shutdown, or the mount detached); returns their handles.
    mutating func failWaitingOpens(deliveries: inout Deliveries) -> [PipeHandle] {
        let abandoned = openWaiters.map(\.handle)
        for wait in openWaiters {
            removeReader(wait.handle, deliveries: &deliveries)
            deliveries.resume(wait.waiter, with: .failed(.noSuchAddressOrDevice))
            // The open failed: it no longer counts as a reader or writer.
            if wait.access.reads { readers -= 1 }
            if wait.access.writes { writers -= 1 }
        }
        openWaiters.removeAll()
        return abandoned
    }
}
