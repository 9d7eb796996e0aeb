/// The requests waiting in one pipe's machine, by the `WaitID`s the machine knows them by:
/// a slot array reused through a free list, so that queueing and answering a request cost
/// no hashing. A wait's number holds its slot and a generation, so an id whose request was
/// answered never finds the request that took its slot next.
///
/// Unchecked Sendable: used only under its pipe's lock.
final class WaiterSlots: @unchecked Sendable {
    private var slots: [(number: UInt64, waiter: (any PipeWaiter)?)] = []
    private var free: [Int] = []
    private var generation: UInt64 = 0
    private(set) var count = 0

    /// Keeps `waiter`; returns the id it waits by.
    func insert(_ waiter: any PipeWaiter) -> WaitID {
        generation &+= 1
        let index: Int
        if let reused = free.popLast() { index = reused } else {
            index = slots.count
            slots.append((0, nil))
        }
        let number = generation << 32 | UInt64(truncatingIfNeeded: index) & 0xFFFF_FFFF
        slots[index] = (number, waiter)
        count += 1
        return WaitID(number: number)
    }

    /// Lets go of the request waiting as `id` and returns it; nil if there is none.
    @discardableResult
    func remove(_ id: WaitID) -> (any PipeWaiter)? {
        let index = Int(truncatingIfNeeded: id.number & 0xFFFF_FFFF)
        guard id.host == .local, index < slots.count, slots[index].number == id.number, let waiter = slots[index].waiter else {
            return nil
        }
        slots[index] = (0, nil)
        free.append(index)
        count -= 1
        if count == 0 && slots.count > 64 { (slots, free) = ([], []) }
        return waiter
    }

    /// The id `waiter` waits by, if it still waits (an interrupt's withdrawal).
    func id(of waiter: any PipeWaiter) -> WaitID? {
        slots.first { $0.waiter === waiter }.map { WaitID(number: $0.number) }
    }

    /// For tests: exactly these waits are kept.
    func holdsExactly(_ ids: [WaitID]) -> Bool {
        ids.count == count && ids.allSatisfy { id in
            let index = Int(truncatingIfNeeded: id.number & 0xFFFF_FFFF)
            return index < slots.count && slots[index].number == id.number && slots[index].waiter != nil
        }
    }
}
