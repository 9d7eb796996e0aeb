import Dispatch
import PipeCore
import Synchronization

/// Every request that waits, in one place: turning a request into a waiter interrupts can
/// reach, the interrupt callback, an open's timer, and the answer (EIO) to any waiter left
/// at shutdown. Only the pipes keep a waiter alive (see `WaiterTable`).
final class FuseWaiters: Sendable {
    let registry: PipeRegistry
    /// Waiters that registered for interrupts, by the key libfuse hands back to the callback.
    private let table = WaiterTable<FuseWaiter>()
    private let nextID = Atomic<UInt64>(1)

    init(registry: PipeRegistry) { self.registry = registry }

    /// Turns a request into a waiter that interrupts can reach. The interrupt callback may
    /// run at once (the request was interrupted already), so the waiter is findable first.
    func make(_ request: consuming FuseRequest, inode: InodeNumber) -> FuseWaiter {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let waiter = FuseWaiter(request, id: id, inode: inode, waiters: self)
        table.insert(waiter, id: id)
        waiter.registerInterrupt()
        return waiter
    }

    /// Called by `FuseWaiter` just before it replies, and as it is freed.
    func forget(_ id: UInt64) { table.remove(id) }

    /// An open that waits fails ETIMEDOUT after `timeout` seconds (if still waiting). The
    /// timer holds it weakly: an open answered before its time is freed at once.
    func expire(_ waiter: FuseWaiter, after timeout: Double) {
        guard timeout > 0 else { return }
        let registry = self.registry
        let inode = waiter.inode
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [weak waiter] in
            if let waiter { registry.expire(waiter, inode: inode) }
        }
    }

    /// The interrupt callback: runs inside libfuse with the request's lock held, so it only
    /// marks the waiter and hands the withdrawal (which replies) to another thread.
    func interrupted(_ id: UInt64) {
        guard let waiter = table[id] else { return }
        waiter.markInterrupted()
        let registry = self.registry
        DispatchQueue.global().async { registry.interrupt(waiter, inode: waiter.inode) }
    }

    /// Shutdown, after the pipes answered their waiters: EIO to any waiter still alive.
    func abandonAll() {
        for waiter in table.drain() { waiter.abandon() }
    }
}
