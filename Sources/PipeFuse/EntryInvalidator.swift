import CFuse3
import Dispatch
import Glibc
import PipeCore
import Synchronization

/// Asks the kernel to forget names under the root (`fuse_lowlevel_notify_inval_entry`),
/// so that the names it holds with no live pipe stay bounded: it then drops their entries
/// and sends `forget` for their inodes.
///
/// The kernel takes the root directory's lock for this, and a lookup in the root holds
/// that lock while it waits for its reply; if every serving thread (on one CPU, the only
/// one) sat in a notification, no thread would be left to answer that lookup: so the
/// notifications go out from a queue of their own, never from a request handler.
final class EntryInvalidator: Sendable {
    private let queue = DispatchQueue(label: "npfs.forget-names")
    /// The session's address while it may be notified (0 after `detach`).
    private let session = Atomic<UInt>(0)
    /// Notifications being sent now.
    private let sending = Atomic<Int>(0)

    func attach(_ session: OpaquePointer) { self.session.store(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(session))), ordering: .releasing) }

    /// Stops notifying; returns false if a notification is still under way after
    /// `timeout` seconds (the session must not be destroyed under it then).
    func detach(timeout: Double = 1) -> Bool {
        session.store(0, ordering: .releasing)
        let deadline = Deadline(after: timeout)
        while sending.load(ordering: .acquiring) > 0 {
            if deadline.hasPassed { return false }
            usleep(1000)
        }
        return true
    }

    /// Asks the kernel to forget `names` (entries of the root directory), in the background.
    func forget(_ names: [PipeName]) {
        queue.async { [self] in
            for name in names {
                sending.wrappingAdd(1, ordering: .acquiring)
                defer { sending.wrappingSubtract(1, ordering: .releasing) }
                guard let address = UnsafeRawPointer(bitPattern: session.load(ordering: .acquiring)) else { return }
                let se = OpaquePointer(address)
                let bytes = name.bytes.map { CChar(bitPattern: $0) } + [0]
                bytes.withUnsafeBufferPointer { buffer in
                    _ = fuse_lowlevel_notify_inval_entry(se, fuse_ino_t(FUSE_ROOT_ID), buffer.baseAddress, name.bytes.count)
                }
            }
        }
    }
}
