import PipeCore
import Synchronization

/// What a host taken for gone finds when it comes back (cut off from the server for longer
/// than the cluster's timeout, or its lease's connection lost): the other hosts closed its
/// opens and withdrew its waits, as for a dead daemon. Its handles from before answer EIO
/// until reopened, as a dead NFS server's would; its waiting requests were answered EIO
/// when it noticed (`PostgresPipeStore.rejoinedAfterRemoval`).
final class HostFence: Sendable {
    /// How many times this host was taken for gone, and the count at each live open.
    private let state = Mutex<(epoch: UInt64, opens: [PipeHandle: UInt64])>((0, [:]))

    func opened(_ handle: PipeHandle) { state.withLock { $0.opens[handle] = $0.epoch } }

    /// The open was made before this host was last taken for gone.
    func isFenced(_ handle: PipeHandle) -> Bool {
        state.withLock { state in state.opens[handle].map { $0 < state.epoch } ?? false }
    }

    /// The open is gone (closed, or it failed); whether it was fenced.
    @discardableResult
    func forget(_ handle: PipeHandle) -> Bool {
        state.withLock { state in state.opens.removeValue(forKey: handle).map { $0 < state.epoch } ?? false }
    }

    /// This host was taken for gone: every open made so far is fenced.
    func raise() { state.withLock { $0.epoch += 1 } }
}
