import CFuse3
import CRing
import Glibc

/// The serving loop's order on rings: a RELEASE is seen before a later POLL or
/// non-blocking READ, WRITE or OPEN of the same pipe, whichever queues they arrive on.
///
/// What the kernel does (fs/fuse/dev_uring.c): a request goes to the queue of the CPU its
/// caller runs on and reaches that queue's thread as task work on its ring. close()
/// returns once its RELEASE is queued so, on the closing CPU's queue, possibly not yet in
/// userspace; the reader's next poll, made on another CPU, arrives on another queue and
/// could be handled first, and would miss the hang-up a kernel FIFO shows at once.
///
/// The rings are made with deferred task work (IORING_SETUP_DEFER_TASKRUN): a ring's task
/// work runs, in the order it was added, when its own thread waits, and a message from
/// another ring (IORING_OP_MSG_RING) is added to that same list. So a queue that holds a
/// request back sends every other queue a message and handles the request once each has
/// answered. A queue answers once it has handled every completion its wait brought with
/// the message, not when it reaches the message: the message's completion is posted when
/// its task work runs, but a request's (a command's) only when that run of task work ends,
/// so the RELEASE can come after the message in the completion queue, in the same batch.
/// (Answering at the message missed 2 of 400 closes in the test that moves between CPUs.)
///
/// And only once the queue has an entry waiting in the kernel: a request is queued in the
/// kernel, out of the task work's order, only while its queue has no entry free (all hold
/// requests that wait, or replies not yet committed), or, for a RELEASE (a background
/// request), while 12 (`max_background`) are in flight and one already is on this queue.
/// An entry free in the kernel means nothing is queued there; a commit submitted fetches
/// what is (and lets a held-back RELEASE through), its completion seen on looking again.
/// So before passing, the queue submits its commits and looks again (up to 4 times), and
/// passes once an entry it had submitted before the batch is still free. Only requests whose answer a
/// pending RELEASE could change are held: POLL, and READ, WRITE and OPEN with O_NONBLOCK
/// (a blocking read or write that finds nothing to do waits, and the RELEASE, when handled,
/// ends its wait as it would have ended it at once: the outcome is the same).
///
/// Not covered: a RELEASE the kernel could not hand to its queue at once, because every
/// entry there was held by requests that wait (the queue then registers more: `grow`), or
/// because the kernel's limit of background requests (`max_background`, 12 by default,
/// one per queue always allowed) was reached.
extension RingQueue {
    /// user_data of a message from another queue asking to be passed: origin qid at bit
    /// 32, entry index below.
    static let passRequest: UInt64 = 2 << 62
    /// user_data of another queue's pass (or of a message to it that failed): entry index.
    static let passed: UInt64 = 3 << 62

    /// Holds back a request that must not overtake a RELEASE on another queue; true if held.
    func holdsBack(_ entry: RingEntry, _ buffer: fuse_buf) -> Bool {
        guard peers.count > 1, let ring, RingQueue.keepsOrder(buffer) else { return false }
        held[entry.index] = (peers.count - 1, buffer)
        for (other, descriptor) in peers.enumerated() where other != qid {
            let request = RingQueue.passRequest | UInt64(qid) << 32 | UInt64(entry.index)
            if npfs_ring_message(ring, descriptor, 0, request, RingQueue.passed | UInt64(entry.index)) != 0 {
                passedOnce(entry.index)
            }
        }
        return true
    }

    /// A message tagged in its top bits: another queue's request to be passed (answered by
    /// `answerPasses` once this batch of completions is handled), or a pass.
    func orderMessage(_ data: UInt64) {
        if data & RingQueue.tagMask == RingQueue.passRequest {
            passRequests.append(data)
        } else if data & RingQueue.tagMask == RingQueue.passed {
            passedOnce(Int(data & 0xffff_ffff))
        }
    }

    /// After a batch of completions: passes other queues' requests that came in it if
    /// nothing can be queued in the kernel ahead of them, else asks to look again first.
    /// Returns the rounds of looking again so far (0: wait as usual).
    func passesAfterBatch(_ looked: Int) -> Int {
        guard !passRequests.isEmpty else { return 0 }
        if (unsubmitted > 0 || available <= 0) && looked < 4 { return looked + 1 }
        answerPasses()
        return 0
    }

    /// Passes the requests of other queues that came in the batches just handled.
    private func answerPasses() {
        guard let ring, !passRequests.isEmpty else { return }
        for data in passRequests {
            let origin = Int((data >> 32) & 0xffff)
            guard peers.indices.contains(origin) else { continue }
            _ = npfs_ring_message(ring, peers[origin], 0, RingQueue.passed | (data & 0xffff_ffff), RingQueue.unsentData)
        }
        passRequests.removeAll(keepingCapacity: true)
    }

    /// One more queue has passed a held request: handled once all have.
    private func passedOnce(_ index: Int) {
        guard var request = held[index] else { return }
        request.awaited -= 1
        guard request.awaited <= 0 else {
            held[index] = request
            return
        }
        held[index] = nil
        guard let entry = entry(at: index) else { return }
        handle(entry, &request.buffer)
    }

    /// POLL, and READ, WRITE and OPEN with O_NONBLOCK.
    static func keepsOrder(_ buffer: fuse_buf) -> Bool {
        guard let opcode = buffer.opcode, let request = buffer.mem else { return false }
        let header = MemoryLayout<fuse_in_header>.size
        let flagsAt: Int
        switch opcode {
        case FUSE_POLL.rawValue: return true
        case FUSE_READ.rawValue, FUSE_WRITE.rawValue: flagsAt = header + 32   // fuse_read_in / fuse_write_in .flags
        case FUSE_OPEN.rawValue: flagsAt = header                            // fuse_open_in .flags
        default: return false
        }
        guard buffer.size >= flagsAt + 4 else { return false }
        return request.loadUnaligned(fromByteOffset: flagsAt, as: UInt32.self) & UInt32(O_NONBLOCK) != 0
    }
}
