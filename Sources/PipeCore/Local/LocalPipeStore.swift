import Synchronization

/// The pipes of a mount that shares them with nobody: `LocalPipe`s in this process, and
/// the budget the bytes of their waiting writes are charged to.
package final class LocalPipeStore: PipeStore {
    /// The bytes of waiting writes, shared by every pipe.
    let budget: ByteBudget
    private let attached = Mutex<[[UInt8]: LocalPipe]>([:])

    package init(limits: MountLimits) {
        budget = ByteBudget(limit: limits.maxWaitingBytes, userLimit: limits.userMaxWaitingBytes)
    }

    package func attach(_ key: [UInt8], config: PipeConfig, ownership: Ownership) -> any PipeEndpoint {
        let budget = self.budget
        return attached.withLock { attached in
            if let pipe = attached[key] { return pipe }
            let pipe = LocalPipe(config: config, ownership: ownership, budget: budget)
            attached[key] = pipe
            return pipe
        }
    }

    package func detach(_ key: [UInt8]) {
        attached.withLock { attached in
            attached[key] = nil
            attached.shrinkIfSparse()
        }
    }

    package func list() -> [any PipeEndpoint] { attached.withLock { Array($0.values) } }

    package func waitingBytes(of uid: UInt32) -> (total: Int, user: Int) { (budget.inUse, budget.inUse(by: uid)) }
}
