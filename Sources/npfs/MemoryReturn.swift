import CLinux
import Dispatch
import PipeCore
import Synchronization

/// Gives memory that pipes freed back to the system, so that the daemon's resident size
/// falls back after a load: malloc's thresholds are fixed (glibc would otherwise raise the
/// mmap threshold after freeing a large buffer and keep later ones in its heap), and once a
/// second, when at least 1 MiB was freed since, `malloc_trim` returns the heap's free pages.
final class MemoryReturn {
    private let timer: DispatchSourceTimer
    /// `FreedMemory.bytes` at the last trim.
    private static let trimmedAt = Atomic<Int>(0)

    init() {
        _ = mallopt(M_MMAP_THRESHOLD, 128 << 10)
        _ = mallopt(M_TRIM_THRESHOLD, 128 << 10)
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
