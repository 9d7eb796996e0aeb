import CLinux
import PipeCore
import Synchronization

/// Gives memory that pipes freed back to the system, so that the daemon's resident size
/// falls back after a load: once a second (the session's housekeeping), when at least 1 MiB was freed since,
/// `malloc_trim` returns the free pages of every heap. Between two trims, buffers up to
/// 4 MiB (a waiting write's bytes are at most 1 MiB) are reused from the heap rather than
/// mapped and unmapped each time (page faults, zeroing and TLB flushes on every large
/// write that waits): malloc's thresholds are fixed at that, and glibc no longer moves
/// them by itself.
enum MemoryReturn {
    /// `FreedMemory.bytes` at the last trim.
    private static let trimmedAt = Atomic<Int>(0)

    /// Fixes malloc's thresholds; call once, before serving.
    static func configure() {
        _ = mallopt(M_MMAP_THRESHOLD, 4 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 8 << 20)
    }

    /// Trims the heaps if at least 1 MiB was freed since the last trim: run by the
    /// session's once-a-second housekeeping.
    @Sendable static func trimIfFreed() {
        let freed = FreedMemory.bytes.load(ordering: .relaxed)
        guard freed - trimmedAt.load(ordering: .relaxed) >= 1 << 20 else { return }
        trimmedAt.store(freed, ordering: .relaxed)
        _ = malloc_trim(0)
    }
}
