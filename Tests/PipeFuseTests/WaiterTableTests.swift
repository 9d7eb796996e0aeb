import Testing
@testable import PipeFuse

/// The table of waiting requests must never be what keeps one alive: a waiter the core
/// lets go of unresumed has to be freed, so that its request is answered (EIO) rather
/// than its caller left hanging (issue 12, item 13).
@Suite struct WaiterTableTests {
    final class Waiter: Sendable {
        let freed: @Sendable () -> Void
        init(freed: @escaping @Sendable () -> Void) { self.freed = freed }
        deinit { freed() }
    }

    final class Flag: @unchecked Sendable { var raised = false }

    @Test func aWaiterNobodyElseHoldsIsFreed() {
        let table = WaiterTable<Waiter>()
        let flag = Flag()
        do {
            let waiter = Waiter { flag.raised = true }
            table.insert(waiter, id: 7)
            #expect(table[7] === waiter)
        }
        #expect(flag.raised, "the table kept a waiter alive")
        #expect(table[7] == nil)
    }

    @Test func shutdownTakesTheWaitersStillAlive() {
        let table = WaiterTable<Waiter>()
        let held = Waiter {}
        table.insert(held, id: 1)
        table.insert(Waiter {}, id: 2)
        let left = table.drain()
        #expect(left.count == 1 && left.first === held)
        #expect(table.count == 0 && table[1] == nil)
    }

    @Test func aRemovedWaiterIsNotFound() {
        let table = WaiterTable<Waiter>()
        let waiter = Waiter {}
        table.insert(waiter, id: 3)
        table.remove(3)
        #expect(table[3] == nil && table.count == 0)
        #expect(table.drain().isEmpty)
    }
}

/// Issue 12, item 15: a lazy unmount is noticed by the mount's device leaving the table.
@Suite struct MountWatchTests {
    @Test func aMountIsFoundByItsDevice() {
        let table = """
            22 1 0:21 / /proc rw,nosuid - proc proc rw
            98 22 0:52 / /tmp/m\\040x rw,nosuid,nodev - fuse.npfs npfs rw,user_id=0
            """
        #expect(MountWatch.lists("0:52", in: table))
        #expect(!MountWatch.lists("0:5", in: table))
        #expect(!MountWatch.lists("0:53", in: table))
        #expect(MountWatch.device(at: "/tmp/m x", in: table) == "0:52")
        #expect(MountWatch.device(at: "/tmp/m", in: table) == nil)
        #expect(!MountWatch().detachedNow(), "nothing watched, nothing detached")
    }
}
