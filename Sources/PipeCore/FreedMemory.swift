import Synchronization

/// Bytes of pipe buffers and waiting writes freed since the process started: the daemon
/// gives freed memory back to the system once enough has been freed (see its `Daemon`).
public enum FreedMemory {
    public static let bytes = Atomic<Int>(0)

    static func note(_ count: Int) { bytes.add(count, ordering: .relaxed) }
}
