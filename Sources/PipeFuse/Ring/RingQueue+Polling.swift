import CRing
import Glibc

/// Polling before sleeping (`io_uring_spin`).
extension RingQueue {
    private static func now() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return time.tv_sec * 1_000_000_000 + time.tv_nsec
    }

    /// Whether to look for work a while before sleeping: while a request of this CPU waits
    /// for an answer that is likely to come from another CPU (the last one did), and only
    /// where no other queue's thread shares this CPU. Asleep, this thread would be woken
    /// by that CPU (an inter-processor wake-up of an idle CPU, tens of microseconds on a
    /// virtual machine), then wake its client; awake, it sees the answer on its list at
    /// once (the replying thread sends no wake-up: `sleeping` is false), and its CPU, not
    /// idle, keeps the client where it is. An answer made on this thread (both ends of a
    /// pipe on this CPU) would come only after the thread lets its CPU go.
    var polls: Bool {
        spinNanoseconds > 0 && waiting > 0
            && alone.load(ordering: .relaxed) && answersFromElsewhere.load(ordering: .relaxed)
    }

    /// Looks for work for up to `spinNanoseconds` without sleeping, the commands prepared
    /// submitted on the way: 0 or a negative errno if some came, nil if none did.
    func poll() -> Int32? {
        guard let ring else { return nil }
        let deadline = RingQueue.now() + spinNanoseconds
        repeat {
            let ready = npfs_ring_poll(ring)
            if ready != 0 || answeredHead.load(ordering: .acquiring) >= 0 || stopping.load(ordering: .relaxed) {
                return min(ready, 0)
            }
        } while RingQueue.now() < deadline
        return nil
    }
}
