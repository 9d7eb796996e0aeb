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
}
