import Dispatch
import PipeCore
import Synchronization

/// One connection and the serial queue that uses it: the cluster's transactions run here,
/// never on a FUSE thread. Work for one pipe always goes to the same worker, so a host's
/// requests to a pipe commit in the order they came.
final class ClusterWorker: @unchecked Sendable {
    private let queue: DispatchQueue
    private let settings: ClusterSettings
    /// Used on `queue` only.
    private var connection: Connection?

    init(index: Int, settings: ClusterSettings) {
        queue = DispatchQueue(label: "npfs.cluster.\(index)")
        self.settings = settings
    }

    func async(_ work: @escaping @Sendable (ClusterWorker) -> Void) {
        queue.async { work(self) }
    }

    /// Runs `work` here, after what is queued, and waits for it: at most twice the
    /// cluster's timeout and a second (a reconnection and a statement); nil past that.
    /// Never on a FUSE thread.
    func sync<T: Sendable>(_ work: @escaping @Sendable (ClusterWorker) -> T?) -> T? {
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        queue.async {
            let value = work(self)
            result.withLock { $0 = value }
            done.signal()
        }
        _ = done.wait(timeout: .now() + settings.timeout * 2 + 1)
        return result.withLock { $0 }
    }

    /// The connection, made again if it was lost (failing after the cluster timeout).
    func connected() throws(ClusterError) -> Connection {
        if let connection, connection.isOK { return connection }
        connection = nil
        let deadline = Timestamp.monotonicSeconds() + settings.timeout
        var pause = 0.05
        while true {
            do {
                let made = try Connection(settings.target, timeout: max(2, deadline - Timestamp.monotonicSeconds()))
                made.patience = settings.timeout
                // A pipe's bytes never outlive its users: a commit that does not wait for
                // the disk is enough (a server crash may lose the last moment's writes).
                try made.execute("SET synchronous_commit = off")
                // Should this host be cut off mid-transaction, the server ends it (and lets
                // go of the pipe's row) after the cluster's timeout, as the others end its
                // lease's connection.
                try made.execute("SET idle_in_transaction_session_timeout = \(Int(settings.timeout * 1000))")
                connection = made
                return made
            } catch {
                if Timestamp.monotonicSeconds() + pause > deadline { throw error }
                usleep(UInt32(pause * 1_000_000))
                pause = min(pause * 2, 1)
            }
        }
    }

    /// Runs `body`, which begins and commits a transaction on the connection; rolled back if
    /// it throws. One that failed before committing anything because the connection was lost
    /// (the server restarted) is run again on a new connection.
    func transaction<T>(_ body: (Connection) throws(ClusterError) -> T) throws(ClusterError) -> T {
        var tries = 0
        while true {
            let connection = try connected()
            do {
                return try body(connection)
            } catch {
                _ = try? connection.execute("ROLLBACK")
                tries += 1
                guard error.retryable, tries < 2 else { throw error }
                self.connection = nil
            }
        }
    }
}

import Glibc
