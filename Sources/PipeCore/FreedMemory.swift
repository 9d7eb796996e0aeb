import Synchronization

/// Bytes of pipe buffers and waiting writes freed since the process started: the daemon
/// gives freed memory back to the system once enough has been freed (see its `Daemon`).
package enum FreedMemory {
    package static let bytes = Atomic<Int>(0)

    static func note(_ count: Int) { bytes.add(count, ordering: .relaxed) }
}
