import Synchronization

/// Waiting requests by the id libfuse hands back to the interrupt callback, held weakly.
///
/// What keeps a waiting request alive is its pipe (`WaiterSlots`), not this table: a waiter the
/// core lets go of without resuming it is freed, and its request answered EIO on the way
/// (`FuseRequest.deinit`), instead of being kept here and its caller hanging for ever.
final class WaiterTable<Waiter: AnyObject & Sendable>: Sendable {
    /// Unchecked Sendable: `Waiter` is, and the entry is only touched under `entries`' lock.
    private struct Entry: @unchecked Sendable {
        weak var waiter: Waiter?
    }

    private let entries = Mutex<[UInt64: Entry]>([:])

    func insert(_ waiter: Waiter, id: UInt64) {
        entries.withLock { $0[id] = Entry(waiter: waiter) }
    }

    func remove(_ id: UInt64) {
        entries.withLock { entries in
            entries[id] = nil
            entries.shrinkIfSparse()
        }
    }

    subscript(id: UInt64) -> Waiter? { entries.withLock { $0[id]?.waiter } }

    /// Entries, alive or not, not yet removed.
    var count: Int { entries.withLock { $0.count } }

    /// Shutdown: empties the table and returns the waiters still alive.
    func drain() -> [Waiter] {
        entries.withLock { entries in
            defer { entries = [:] }
            return entries.values.compactMap(\.waiter)
        }
    }
}
