import CRing
import Glibc

/// Replies made on other threads: each is pushed onto the queue's answered list (a
/// lock-free stack its thread empties before it waits), and the thread is woken only if
/// it sleeps, or is about to (`sleeping`, set before it looks at the list a last time):
/// by a message on its ring sent with the replying queue's next submission, when a queue's
/// thread made the reply (a write that ends a read's wait on another CPU), or by its
/// doorbell (an eventfd its ring always reads) from any other thread.
extension RingQueue {
    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The queue whose thread this is, if it is one (queues live as long as their session).
    static var current: RingQueue? {
        pthread_getspecific(currentKey).map { Unmanaged<RingQueue>.fromOpaque($0).takeUnretainedValue() }
    }

    static func setCurrent(_ queue: RingQueue) {
        pthread_setspecific(currentKey, Unmanaged.passUnretained(queue).toOpaque())
    }

    /// A reply written into `entry` on the thread of `caller` (nil: not a queue's thread):
    /// queued for this queue's thread to commit, which is woken if it sleeps.
    func answered(_ entry: RingEntry, from caller: RingQueue?) {
        var head = answeredHead.load(ordering: .relaxed)
        while true {
            entry.nextAnswered = head
            let (exchanged, found) = answeredHead.compareExchange(expected: head, desired: entry.index, ordering: .sequentiallyConsistent)
            if exchanged { break }
            head = found
        }
        // A reply to a request that waited (not to the one this thread handles): where it came from.
        let elsewhere = caller !== self
        if (elsewhere || entry !== handling) && answersFromElsewhere.load(ordering: .relaxed) != elsewhere {
            answersFromElsewhere.store(elsewhere, ordering: .relaxed)
        }
        // Seen with the push in one order by both sides (see `sleep`): either this finds
        // the thread going to sleep and wakes it, or the thread finds the reply first.
        guard caller !== self, sleeping.exchange(false, ordering: .sequentiallyConsistent) else { return }
        if let caller {
            caller.wakes.append(self)
        } else {
            ringDoorbell()
        }
    }

    /// Submits what is queued and waits for a completion, unless a reply from another
    /// thread is already on the list: 0 or a negative errno. `sleeping` is set before the
    /// list is looked at, and the pusher looks at `sleeping` after its push, so that either
    /// the pusher wakes this thread or this thread sees the reply.
    func sleep(_ ring: OpaquePointer) -> Int32 {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if answeredHead.load(ordering: .sequentiallyConsistent) >= 0 {
            sleeping.store(false, ordering: .relaxed)
            return npfs_ring_submit(ring)
        }
        let waited = npfs_ring_submit_and_wait(ring)
        sleeping.store(false, ordering: .relaxed)
        return waited
    }

    func ringDoorbell() {
        var one: UInt64 = 1
        _ = Glibc.write(doorbell, &one, 8)
    }

    /// Sends the wake-ups this thread's replies owe other queues.
    func sendWakes() {
        guard !wakes.isEmpty else { return }
        for queue in wakes {
            guard let ring, npfs_ring_message(ring, queue.ringDescriptor, 0, RingQueue.wakeData, RingQueue.unsentData) == 0 else {
                queue.ringDoorbell()
                continue
            }
        }
        wakes.removeAll(keepingCapacity: true)
    }
}
