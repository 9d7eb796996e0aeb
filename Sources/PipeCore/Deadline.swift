import Glibc

/// A moment some seconds ahead on the monotonic clock: the one way npfs waits for at most
/// so long (a daemon to finish, a drain, a screen's interval, notifications to end).
package struct Deadline: Sendable {
    /// `Timestamp.monotonicSeconds()` at the deadline.
    package let monotonic: Double

    package init(after seconds: Double) { monotonic = Timestamp.monotonicSeconds() + seconds }

    /// Seconds left; 0 once it has passed.
    package var remaining: Double { max(0, monotonic - Timestamp.monotonicSeconds()) }

    package var hasPassed: Bool { Timestamp.monotonicSeconds() >= monotonic }

    /// The same moment on CLOCK_REALTIME, for calls that take an absolute time (`sem_timedwait`).
    package var realtime: timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let left = remaining
        let whole = left.rounded(.down)
        var at = timespec(tv_sec: now.tv_sec + Int(whole), tv_nsec: now.tv_nsec + Int((left - whole) * 1e9))
        if at.tv_nsec >= 1_000_000_000 { (at.tv_sec, at.tv_nsec) = (at.tv_sec + 1, at.tv_nsec - 1_000_000_000) }
        return at
    }
}
