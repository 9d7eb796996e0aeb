import CLinux
import Dispatch
import PipeCore
import Synchronization

/// Gives memory that pipes freed back to the system, so that the daemon's resident size
/// falls back after a load: once a second, when at least 1 MiB was freed since,
/// `malloc_trim` returns the free pages of every heap. Between two trims, buffers up to
/// 4 MiB (a waiting write's bytes are at most 1 MiB) are reused from the heap rather than
/// mapped and unmapped each time (page faults, zeroing and TLB flushes on every large
/// write that waits): malloc's thresholds are fixed at that, and glibc no longer moves
/// them by itself.
final class MemoryReturn {
    private let timer: DispatchSourceTimer
    /// `FreedMemory.bytes` at the last trim.
    private static let trimmedAt = Atomic<Int>(0)

    init() {
        _ = mallopt(M_MMAP_THRESHOLD, 4 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 8 << 20)
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler {
            let freed = FreedMemory.bytes.load(ordering: .relaxed)
            guard freed - MemoryReturn.trimmedAt.load(ordering: .relaxed) >= 1 << 20 else { return }
            MemoryReturn.trimmedAt.store(freed, ordering: .relaxed)
            _ = malloc_trim(0)
        }
        timer.resume()
    }

    func stop() { timer.cancel() }
}
