import Glibc
import PipeCore
import Testing

@Suite struct DeadlineTests {
    @Test func aDeadlinePassesAfterItsSecondsOnBothClocks() {
        let deadline = Deadline(after: 0.2)
        #expect(!deadline.hasPassed)
        #expect(deadline.remaining > 0.1 && deadline.remaining <= 0.2)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let at = deadline.realtime
        let ahead = Double(at.tv_sec - now.tv_sec) + Double(at.tv_nsec - now.tv_nsec) / 1e9
        #expect(ahead > 0.1 && ahead <= 0.21, "\(ahead)")
        #expect(at.tv_nsec >= 0 && at.tv_nsec < 1_000_000_000)
        usleep(250_000)
        #expect(deadline.hasPassed)
        #expect(deadline.remaining == 0)
    }
}
