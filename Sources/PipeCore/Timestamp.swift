import Glibc

/// A wall-clock time with nanoseconds, as `stat` reports it.
package struct Timestamp: Sendable, Equatable {
    package var seconds: Int
    package var nanoseconds: Int

    package init(seconds: Int, nanoseconds: Int) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    package static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: ts.tv_sec, nanoseconds: ts.tv_nsec)
    }

    /// Seconds since the epoch, with their fraction.
    package var secondsSinceEpoch: Double { Double(seconds) + Double(nanoseconds) / 1e9 }

    /// Seconds on the monotonic clock, for ages and intervals.
    package static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
