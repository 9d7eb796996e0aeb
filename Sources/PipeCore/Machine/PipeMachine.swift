import SystemPackage

/// A pipe's rules: fifo(7) and pipe(7) in `fifo` mode, the seed driver's ring in `ring`
/// mode, message framing and broadcast delivery. Who may proceed, who waits, who is woken
/// and what a read returns are decided here, and only here.
///
/// A value, and `Sendable`: opens and waits are ids (`OpenID`, `WaitID`), never objects, the
/// time is an input, and each transition records its effects in a `Transition` (replies
/// for waits, readiness changed) for its executor to perform after unlocking; only bytes
/// are lent during the step (`Lender`). Its bytes sit in a `PipeBuffer`. An executor (the
/// local `LocalPipe`) keeps it behind a lock with the waiting requests and pollers it names.
struct PipeMachine<Buffer: PipeBuffer & ~Copyable>: ~Copyable, Sendable {
    struct OpenWait: Sendable { let wait: WaitID; let open: OpenID; let access: AccessMode }
    struct ReadWait: Sendable { let wait: WaitID; let open: OpenID; let size: Int }
    struct WriteWait: Sendable {
        let wait: WaitID
        /// The open the write came through (for `npfs status --clients`).
        let open: OpenID
        /// The request's bytes not taken before it was queued, kept by the executor (see `queueWrite`).
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
    /// What a withdrawn wait was doing.
    enum Cancelled: Equatable { case open(OpenID), read, write }

    /// The buffered bytes; its limit is the pipe's capacity.
    var ring: Buffer
    /// Who waits (fifo) or nobody (ring).
    var mode: PipeConfig.Mode
    /// What a ring-mode write does with bytes that do not fit (kept in fifo mode for later).
    var overflow: PipeConfig.Overflow
    var openTimeout: Double
    /// Outlives its last close (see `PipeConfig.persist`): the executor keeps it.
    var persist: Bool
    /// How bytes reach readers, and the framing: with what each needs to keep.
    var delivery: Delivery
    var ownership: Ownership
    /// The opens that read (waiting ones too): broadcast gives each a cursor.
    var readerOpens: Set<OpenID> = []
    var readers = 0
    var writers = 0
    /// The mount is shutting down: nobody waits any more, as if no peer were left.
    var closed = false
    /// Shut down, or the mount detached: every open fails ENXIO (one decided after the
    /// registry stopped admitting them, too).
    var refusingOpens = false
    /// Readers and writers as decisions see them (none once closed).
    var liveReaders: Int { closed ? 0 : readers }
    var liveWriters: Int { closed ? 0 : writers }
    /// Opens of each end ever made (the kernel's r_counter and w_counter): a waiting open
    /// completes when its partner's counter moves, and POLLHUP needs a writer seen since open.
    var readerOpenCount: UInt64 = 0
    var writerOpenCount: UInt64 = 0
    var openWaits: [OpenWait] = []
    var readWaits: [ReadWait] = []
    var writeWaits: [WriteWait] = []
    var bytesWritten: UInt64 = 0
    var bytesRead: UInt64 = 0
    var dropped: UInt64 = 0
    let created: Timestamp
    var lastRead: Timestamp
    var lastWrite: Timestamp

    init(config: PipeConfig, ownership: Ownership, at now: Timestamp) {
        ring = Buffer(limit: config.capacity)
        mode = config.mode
        overflow = config.overflow
        openTimeout = config.openTimeout
        persist = config.persist
        delivery = Delivery(config.delivery, config.framing, readers: [])
        self.ownership = ownership
        created = now
        lastRead = now
        lastWrite = now
    }

    var waits: Bool { mode == .fifo }
    var framed: Bool { delivery.framed }
    var broadcast: Bool { delivery.isBroadcast }

    /// The settings, as they are now.
    var config: PipeConfig {
        var config = PipeConfig.defaults
        config.capacity = ring.limit
        config.mode = mode
        config.overflow = overflow
        config.framing = delivery.framing
        config.delivery = delivery.kind
        config.openTimeout = openTimeout
        config.persist = persist
        return config
    }

    /// What each open of the pipe waits for now.
    var waitingOpens: [OpenID: PipeClient.Waiting] {
        var waiting: [OpenID: PipeClient.Waiting] = [:]
        for wait in openWaits { waiting[wait.open] = .open }
        for wait in readWaits { waiting[wait.open] = .read }
        for wait in writeWaits { waiting[wait.open] = .write }
        return waiting
    }

    /// Every wait queued now.
    var waitIDs: [WaitID] { openWaits.map(\.wait) + readWaits.map(\.wait) + writeWaits.map(\.wait) }

    var status: PipeStatus {
        .init(config: config, ownership: ownership, buffered: ring.count, readers: readers, writers: writers,
              bytesWritten: bytesWritten, bytesRead: bytesRead, dropped: dropped, allocated: ring.allocatedBytes + delivery.allocatedBytes,
              lastRead: lastRead, lastWrite: lastWrite, created: created)
    }

    /// For tests: the buffer's invariants, message lengths that add up to the bytes
    /// buffered, and counters that account for every byte.
    var isConsistent: Bool {
        ring.verifyInvariants() && delivery.isConsistent(buffered: ring.count, readers: readerOpens)
            && UInt64(ring.count) == bytesWritten - bytesRead - dropped
    }

    /// Frees buffer memory that stayed unused since the previous call.
    mutating func trim() {
        ring.trim()
        delivery.trim()
    }

    // MARK: open / close

    /// An open decides first and only then changes the pipe: one that fails (ENXIO) or is
    /// interrupted before it would wait leaves no trace (no end counted, no reader kept).
    /// Returns the open's POLLHUP mark with its answer (`.queued` if it waits as `wait`).
    mutating func open(_ open: OpenID, access: AccessMode, nonblocking: Bool, wait: WaitOffer,
                       _ step: inout Transition) -> (OpenResult, hangUpVersion: UInt64) {
        if refusingOpens { return (.done(.failed(.noSuchAddressOrDevice)), 0) }
        let mustWaitForPartner: Bool
        switch access {
        // A persisted pipe's bytes are there for a reader without a writer (then end of file).
        case .read: mustWaitForPartner = waits && liveWriters == 0 && !nonblocking && !(persist && !broadcast && !ring.isEmpty)
        case .write:
            if waits && nonblocking && liveReaders == 0 { return (.done(.failed(.noSuchAddressOrDevice)), 0) }
            mustWaitForPartner = waits && liveReaders == 0
        case .readWrite: mustWaitForPartner = false
        }
        if mustWaitForPartner && wait.interrupted { return (.done(.failed(.interrupted)), 0) }
        // POLLHUP stays off until a writer has come and gone (pipe_poll).
        let hangUpVersion = access == .read && liveWriters == 0 && nonblocking ? writerOpenCount : 0
        if access.reads {
            addReader(open)
            readers += 1
            readerOpenCount += 1
        }
        if access.writes {
            writers += 1
            writerOpenCount += 1
        }
        if access.writes { completeOpenWaits(for: .read, &step) }
        if access.reads { completeOpenWaits(for: .write, &step) }
        step.changeReadiness()
        guard mustWaitForPartner else { return (.done(.opened(open.handle)), hangUpVersion) }
        openWaits.append(OpenWait(wait: wait.id, open: open, access: access))
        return (.queued, 0)
    }

    /// Completes the opens of `access` that wait for the other end to appear.
    mutating func completeOpenWaits(for access: AccessMode, _ step: inout Transition) {
        guard !openWaits.isEmpty else { return }
        openWaits.removeAll { wait in
            guard wait.access == access else { return false }
            step.resume(wait.wait, with: .opened(wait.open.handle))
            return true
        }
    }

    /// The last descriptor of an open was closed (FUSE `release`).
    mutating func close(_ open: OpenID, access: AccessMode, _ step: inout Transition, lend: some Lender) {
        removeReader(open, &step, lend: lend)
        dropEnds(of: access, &step)
    }

    /// One reader and/or writer fewer; wakes who that concerns.
    mutating func dropEnds(of access: AccessMode, _ step: inout Transition) {
        if access.reads {
            readers -= 1
            if readers == 0 {
                // No reader left: waiting writers end with what they wrote, or EPIPE.
                for wait in writeWaits { step.resume(wait.wait, with: wait.written > 0 ? .written(wait.written) : .failed(.brokenPipe)) }
                writeWaits.removeAll()
            }
        }
        if access.writes {
            writers -= 1
            if writers == 0 {
                // No writer left: waiting readers (the ring is empty) see end of file.
                for wait in readWaits { step.resume(wait.wait, with: .data([])) }
                readWaits.removeAll()
            }
        }
        assert(readers >= 0 && writers >= 0)
        step.changeReadiness()
    }

    /// Withdraws a wait (interrupted, or an open whose time ran out) and answers it. Returns
    /// what it was waiting in, or nil if it was no longer waiting.
    mutating func cancel(_ id: WaitID, because reason: Withdrawal, _ step: inout Transition, lend: some Lender) -> Cancelled? {
        if let i = openWaits.firstIndex(where: { $0.wait == id }) {
            let wait = openWaits.remove(at: i)
            removeReader(wait.open, &step, lend: lend)
            if reason == .timedOut {
                // Nobody saw this open: a partner would have completed it.
                if wait.access.reads { readerOpenCount -= 1 }
                if wait.access.writes { writerOpenCount -= 1 }
            }
            dropEnds(of: wait.access, &step)
            step.resume(id, with: .failed(reason == .timedOut ? .timedOut : .interrupted))
            return .open(wait.open)
        }
        guard reason == .interrupted else { return nil }
        if let i = readWaits.firstIndex(where: { $0.wait == id }) {
            readWaits.remove(at: i)
            step.resume(id, with: .failed(.interrupted))
            return .read
        }
        if let i = writeWaits.firstIndex(where: { $0.wait == id }) {
            let wait = writeWaits.remove(at: i)
            // pipe_write: a signal after part was taken returns that part's count.
            step.resume(id, with: wait.written > 0 ? .written(wait.written) : .failed(.interrupted))
            // The next writer in line may fit now.
            settle(&step, lend: lend)
            return .write
        }
        return nil
    }

    /// Shutdown: answers every wait and stops all waiting; returns the opens that never completed.
    mutating func closeForShutdown(_ step: inout Transition, lend: some Lender) -> [OpenID] {
        closed = true
        refusingOpens = true
        let abandoned = failWaitingOpens(&step, lend: lend)
        for wait in readWaits { step.resume(wait.wait, with: .data([])) }
        for wait in writeWaits { step.resume(wait.wait, with: wait.written > 0 ? .written(wait.written) : .failed(.brokenPipe)) }
        readWaits.removeAll()
        writeWaits.removeAll()
        step.changeReadiness()
        return abandoned
    }

    /// Fails every waiting open ENXIO (shutdown, or the mount detached); returns them.
    mutating func failWaitingOpens(_ step: inout Transition, lend: some Lender) -> [OpenID] {
        refusingOpens = true
        let abandoned = openWaits.map(\.open)
        for wait in openWaits {
            removeReader(wait.open, &step, lend: lend)
            step.resume(wait.wait, with: .failed(.noSuchAddressOrDevice))
            // The open failed: it no longer counts as a reader or writer.
            if wait.access.reads { readers -= 1 }
            if wait.access.writes { writers -= 1 }
        }
        openWaits.removeAll()
        return abandoned
    }
}
