import CFuse3
import CLinux
import CRing
import Glibc
import Synchronization

/// One FUSE queue over io_uring: the kernel delivers to it the requests of processes that
/// run on its CPU; its own thread, pinned there, takes them from its ring, has libfuse
/// handle each where it arrives, and commits each reply and fetches the next request in
/// one submission.
///
/// A request answered while it is handled is committed by this thread. One answered later
/// on another thread (a waiting read, an open that met its partner) is written into its
/// entry by that thread and handed over through `answeredHead`, a lock-free list
/// (`RingQueue+Answers.swift`).
///
/// Waiting: while a request of its CPU waits for an answer, the thread looks for work for
/// `io_uring_spin` microseconds before it sleeps (`poll`).
///
/// Entries: `depth` to begin with. A request answered later keeps its entry until then, so
/// whenever fewer than `depth` are left in the kernel, the thread registers another (up to
/// `maximumEntries`): a queue whose entries were all held by waiting requests would take
/// no more requests, not even the one those wait for.
///
/// Unchecked Sendable: everything but `answeredHead`, `sleeping`, `stopping`, the doorbell
/// and the counters is touched by this queue's thread only (`peers` is set before it starts).
final class RingQueue: @unchecked Sendable {
    /// user_data of the doorbell's read; an entry's is its index; other queues' messages
    /// are tagged with the top two bits: a wake-up (`RingQueue+Answers.swift`), the order's
    /// (`RingQueue+Order.swift`).
    static let doorbellData: UInt64 = 1 << 62
    /// A message from another queue that only wakes this one.
    static let wakeData: UInt64 = 1 << 62 | 1
    /// A message that could not be sent (its target is gone): nothing to do.
    static let unsentData: UInt64 = 1 << 62 | 2
    static let tagMask: UInt64 = 3 << 62
    /// Entries a queue may grow to.
    static let maximumEntries = 4096

    let qid: Int
    private let session: OpaquePointer
    private let fuseDescriptor: Int32
    private let depth: Int
    /// How long the thread looks for work before it sleeps while a request waits (`poll`).
    let spinNanoseconds: Int
    let payloadSize: Int
    /// Made by the queue's thread (a ring with deferred task work has one submitter).
    private(set) var ring: OpaquePointer?
    /// The ring's descriptor, for other queues' messages (-1 before it is made).
    private(set) var ringDescriptor: Int32 = -1
    let doorbell: Int32
    private let doorbellValue: UnsafeMutablePointer<UInt64>
    private var entries: [RingEntry] = []
    /// Every queue's ring descriptor, by queue id (set before `start`).
    var peers: [Int32] = []
    /// Requests held back until every other queue has passed them (by entry index), with
    /// the passes still awaited (`RingQueue+Order.swift`).
    var held: [Int: (awaited: Int, buffer: fuse_buf)] = [:]
    /// Other queues' requests to be passed, from the batch of completions being handled.
    var passRequests: [UInt64] = []
    /// Entries registered or committed, waiting in the kernel for a request.
    private var inKernel = 0
    /// Of those, the ones submitted to the kernel before the batch being handled and not
    /// completed in it (see `RingQueue+Order.swift`).
    var available = 0
    /// Commands prepared since the last submission.
    var unsubmitted = 0
    /// Entries the kernel ended (unmount, abort).
    private var ended = 0
    /// Entries held by requests being answered later (or held back by the order).
    var waiting: Int { entries.count - inKernel - ended }
    let answeredHead = Atomic<Int>(-1)
    /// The thread is about to wait, or waits, in the kernel: a reply pushed from another
    /// thread wakes it only then (and only the first such reply).
    let sleeping = Atomic<Bool>(false)
    /// The thread has its CPU to itself, and the process has others (`repin`).
    let alone = Atomic<Bool>(false)
    /// The last reply to a request that waited was made on another thread.
    let answersFromElsewhere = Atomic<Bool>(false)
    /// The entry whose request this thread is handling, if it is.
    private(set) var handling: RingEntry?
    /// Queues to wake with a message before this thread next waits (replies it made for them).
    var wakes: [RingQueue] = []
    let stopping = Atomic<Bool>(false)
    /// Entries allocated, for `npfs status`.
    let entryCount = Atomic<Int>(0)
    private var thread = pthread_t()
    private var threadStarted = false
    /// The thread's id, for `repin` from other threads (0 before it runs).
    private let threadID = Atomic<Int32>(0)
    /// Posted when the ring is set up (or failed to be), and when the thread ends.
    private let signal: UnsafeMutablePointer<sem_t>
    private let go: UnsafeMutablePointer<sem_t>
    /// 0, or the negative errno of a failed set-up (`prepare`).
    private let failure = Atomic<Int32>(0)

    init(qid: Int, session: OpaquePointer, fuseDescriptor: Int32, depth: Int, spin: Int, payloadSize: Int) {
        self.qid = qid
        self.session = session
        self.fuseDescriptor = fuseDescriptor
        self.depth = depth
        spinNanoseconds = spin * 1000
        self.payloadSize = payloadSize
        doorbell = npfs_doorbell()
        doorbellValue = .allocate(capacity: 1)
        signal = .allocate(capacity: 1)
        sem_init(signal, 0, 0)
        go = .allocate(capacity: 1)
        sem_init(go, 0, 0)
    }

    deinit {
        close(doorbell)
        doorbellValue.deallocate()
        sem_destroy(signal)
        signal.deallocate()
        sem_destroy(go)
        go.deallocate()
    }

    /// Starts the thread, which sets up the ring and its first entries; returns once that
    /// is done: 0 or a negative errno.
    func prepare() -> Int32 {
        guard doorbell >= 0 else { return -errno }
        var blocked = sigset_t(), previous = sigset_t()
        sigfillset(&blocked)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            Unmanaged<RingQueue>.fromOpaque(context).takeRetainedValue().serve()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<RingQueue>.fromOpaque(context).release()
            return -created
        }
        threadStarted = true
        while sem_wait(signal) != 0 {}
        return failure.load(ordering: .acquiring)
    }

    /// Lets a prepared queue register its entries: the kernel has taken the INIT reply.
    func start() { sem_post(go) }

    /// Ends the thread (its ring's commands are cancelled as the ring closes) and waits for it.
    func stop() {
        guard threadStarted else { return }
        threadStarted = false
        stopping.store(true, ordering: .releasing)
        sem_post(go)
        var one: UInt64 = 1
        _ = Glibc.write(doorbell, &one, 8)
        pthread_join(thread, nil)
    }

    /// Pins the thread to its CPU while the process may run there, and lets it run where
    /// the process may otherwise: `taskset -a -p` changes every thread's CPUs, a queue's
    /// thread among them, and this puts it back (the serving loop calls it ten times a second).
    func repin() {
        let id = threadID.load(ordering: .acquiring)
        if id != 0 { alone.store(npfs_repin_thread(id, Int32(qid)) == 1, ordering: .relaxed) }
    }

    // MARK: The thread

    private func serve() {
        RingQueue.setCurrent(self)
        threadID.store(npfs_thread_id(), ordering: .releasing)
        defer { if let ring { npfs_ring_destroy(ring) } }
        guard setUp(), let ring else {
            sem_post(signal)
            return
        }
        sem_post(signal)
        while sem_wait(go) != 0 {}
        guard !stopping.load(ordering: .acquiring) else { return }
        for entry in entries { register(entry) }
        _ = npfs_ring_read(ring, doorbell, doorbellValue, RingQueue.doorbellData)
        // Rounds of submitting without waiting, to look again before passing other queues.
        var looksAgain = 0
        while !stopping.load(ordering: .acquiring) {
            sendWakes()
            let waited: Int32
            if looksAgain > 0 {
                waited = npfs_ring_submit(ring)
            } else if polls, let polled = poll() {
                waited = polled
            } else {
                waited = sleep(ring)
            }
            if waited < 0 && waited != -EINTR && waited != -EAGAIN && waited != -EBUSY && waited != -ETIME {
                // Tried again: a queue that stopped would leave its CPU's requests unanswered.
                usleep(1000)
            }
            available = inKernel
            unsubmitted = 0
            var data: UInt64 = 0, result: Int32 = 0
            while npfs_ring_next(ring, &data, &result) == 1 {
                if data == RingQueue.doorbellData {
                    _ = npfs_ring_read(ring, doorbell, doorbellValue, RingQueue.doorbellData)
                } else if data & RingQueue.tagMask != 0 {
                    orderMessage(data)
                } else if data < UInt64(entries.count) {
                    completed(entries[Int(data)], result: result)
                }
            }
            commitAnswered()
            grow()
            looksAgain = passesAfterBatch(looksAgain)
        }
    }

    /// Pins the thread to its CPU (if this process may run there: `repin`), makes the ring
    /// and the first entries. False (with `failure` set) if it cannot.
    private func setUp() -> Bool {
        repin()
        guard let made = npfs_ring_create(256, 1) else {
            failure.store(-errno, ordering: .releasing)
            return false
        }
        ring = made
        ringDescriptor = npfs_ring_fd(made)
        for _ in 0..<depth where addEntry() == nil {
            failure.store(-ENOMEM, ordering: .releasing)
            return false
        }
        return true
    }

    private func addEntry() -> RingEntry? {
        guard let entry = RingEntry(index: entries.count, queue: self, payloadSize: payloadSize) else { return nil }
        entries.append(entry)
        entryCount.store(entries.count, ordering: .relaxed)
        return entry
    }

    private func register(_ entry: RingEntry) {
        if npfs_ring_fuse(ring, fuseDescriptor, UInt32(NPFS_URING_CMD_REGISTER), UInt16(qid), 0, entry.buffers, UInt64(entry.index)) == 0 {
            inKernel += 1
            unsubmitted += 1
        }
    }

    /// An entry's command completed: a request delivered (0), or the entry ended.
    private func completed(_ entry: RingEntry, result: Int32) {
        inKernel -= 1
        available -= 1
        guard result == 0 else {
            if (result == -ENOENT || result == -EAGAIN) && !stopping.load(ordering: .relaxed) {
                // Its commit found no request (it had ended), or the kernel was not ready yet:
                // register it anew.
                register(entry)
            } else {
                ended += 1
            }
            return
        }
        guard var buffer = entry.delivered() else {
            // Sizes that do not add up: answer EIO rather than hand libfuse a bad request.
            entry.fail(EIO)
            answered(entry, from: self)
            return
        }
        if holdsBack(entry, buffer) { return }
        handle(entry, &buffer)
    }

    /// Has libfuse handle a delivered request, its replies routed to its entry.
    func handle(_ entry: RingEntry, _ buffer: inout fuse_buf) {
        handling = entry
        defer { handling = nil }
        RingRoute.with(RingRoute.Entry(entry)) { fuse_session_process_buf(session, &buffer) }
    }

    /// The entry of an index, if there is one.
    func entry(at index: Int) -> RingEntry? { entries.indices.contains(index) ? entries[index] : nil }

    /// Commits every answered entry, each fetching the next request.
    private func commitAnswered() {
        var index = answeredHead.exchange(-1, ordering: .acquiring)
        while index >= 0 && index < entries.count {
            let entry = entries[index]
            index = entry.nextAnswered
            if npfs_ring_fuse(ring, fuseDescriptor, UInt32(NPFS_URING_CMD_COMMIT_AND_FETCH), UInt16(qid),
                              entry.answered, nil, UInt64(entry.index)) == 0 {
                inKernel += 1
                unsubmitted += 1
            }
        }
    }

    /// Keeps `depth` entries in the kernel while requests answered later hold others.
    private func grow() {
        while inKernel < depth && ended == 0 && entries.count < RingQueue.maximumEntries {
            guard let entry = addEntry() else { return }
            register(entry)
        }
    }
}
