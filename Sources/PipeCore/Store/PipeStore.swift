/// Where a mount's pipes live: the registry attaches a name when its first open comes and
/// detaches it after the last open is gone. `LocalPipeStore` keeps them in this process;
/// the daemon chooses the store (`Daemon.swift`).
package protocol PipeStore: Sendable {
    /// The pipe behind a name (`key`, as names are matched), made with `config` and
    /// `ownership` if none is attached.
    func attach(_ key: [UInt8], config: PipeConfig, ownership: Ownership) -> any PipeEndpoint
    /// The name's last open is gone.
    func detach(_ key: [UInt8])
    /// The pipes attached now.
    func list() -> [any PipeEndpoint]
    /// Bytes of waiting writes held now, in all and by `uid`'s writes.
    func waitingBytes(of uid: UInt32) -> (total: Int, user: Int)
    /// Where to report how opens answered later ended (see `OpenOutcomes`).
    func report(to outcomes: any OpenOutcomes)
    /// The names of pipes live on other hosts too (a store shared by several hosts), as
    /// last heard; none for a local store.
    var sharedNames: [[UInt8]] { get }
    /// A shared store's `KEY=VALUE` lines for `npfs status` (server, space, this host, the
    /// hosts seen, connected or since when not); nil for a local store.
    var clusterSummary: String? { get }
    /// Settings, ownership changes and peeks wait for the store (a round trip to another
    /// machine): the adapter makes them on a thread of its own, never a FUSE thread.
    var settingsWait: Bool { get }
    /// The store keeps persisted pipes itself (in a database); otherwise the registry keeps
    /// them attached (`NameTable.Node.pinned`) until `rm` or unmount.
    var keepsPersistedPipes: Bool { get }
    /// The store's endpoints time their waiting opens out themselves, by the pipe's own
    /// `open_timeout` as they learn it (a shared store's pipe may have been set on another
    /// host): the adapter then schedules no expiry of its own.
    var timesOpens: Bool { get }
    /// A shared store's pipes as the server has them (the one named `key`, or every one of
    /// the space), each with its clients on every host: for `npfs status` and
    /// `user.npfs.clients` (a round trip: never on a FUSE thread). Nil for a local store,
    /// whose registry knows its pipes, or if the server cannot be reached.
    func sharedStatus(of key: [UInt8]?) -> [SharedPipeStatus]?
}

/// A pipe of a shared store as the server has it.
package struct SharedPipeStatus: Sendable {
    package let key: [UInt8]
    package let status: PipeStatus
    /// Its opens on every host, oldest first.
    package let clients: [PipeClient]

    package init(key: [UInt8], status: PipeStatus, clients: [PipeClient]) {
        self.key = key
        self.status = status
        self.clients = clients
    }
}

extension PipeStore {
    package func report(to outcomes: any OpenOutcomes) {}
    package var sharedNames: [[UInt8]] { [] }
    package var clusterSummary: String? { nil }
    package var settingsWait: Bool { false }
    package var keepsPersistedPipes: Bool { false }
    package var timesOpens: Bool { false }
    package func sharedStatus(of key: [UInt8]?) -> [SharedPipeStatus]? { nil }
}

/// Told by a store whose waiting opens end on threads of its own (the cluster's, after a
/// transaction) how each ended, so that the registry keeps its counts: an open that failed
/// is undone, as if never made. A local pipe answers through the registry's own calls.
package protocol OpenOutcomes: AnyObject, Sendable {
    /// The open completed; `hangUpVersion` is its POLLHUP mark (see `PipeMachine.open`).
    func openCompleted(_ handle: PipeHandle, hangUpVersion: UInt64)
    /// The open failed or was withdrawn.
    func openFailed(_ handle: PipeHandle)
    /// Who made the open, and when (for a shared store's list of clients).
    func client(of handle: PipeHandle) -> (ClientIdentity, Timestamp)?
}
