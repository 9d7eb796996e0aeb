/// Every open the registry knows, by its handle: which pipe it leads to (reads and writes
/// do no name lookup), and who made it.
struct OpenTable {
    /// One open of a pipe.
    struct OpenFile {
        let pipe: any PipeEndpoint
        let inode: InodeNumber
        let access: AccessMode
        /// Who made the open, and when.
        let client: ClientIdentity
        let since: Timestamp
        /// `pipe_poll`'s seen-a-writer mark for POLLHUP (set once the pipe decided).
        var hangUpVersion: UInt64
        /// The uid the open and its waiting writes are counted for: its caller's.
        let uid: UInt32
    }

    /// What a read, write or poll needs of an open.
    struct Route {
        let pipe: any PipeEndpoint
        let access: AccessMode
        let hangUpVersion: UInt64
        let uid: UInt32
    }

    /// By the handle's number: a table keyed by `UInt64` hashes inline on every read and
    /// write, where one keyed by `PipeHandle` was compiled to hash through its protocol
    /// (120 instructions more per block written and read back, ./instructions.sh).
    private var opens: [UInt64: OpenFile] = [:]
    private var nextHandle: UInt64 = 1

    /// Every open, by its handle.
    var handles: [(key: PipeHandle, value: OpenFile)] { opens.map { (PipeHandle(rawValue: $0.key), $0.value) } }
    var count: Int { opens.count }

    /// Adds an open; returns its new handle.
    mutating func add(_ open: OpenFile) -> PipeHandle {
        let handle = PipeHandle(rawValue: nextHandle)
        nextHandle += 1
        opens[handle.rawValue] = open
        return handle
    }

    mutating func remove(_ handle: PipeHandle) -> OpenFile? {
        guard let open = opens.removeValue(forKey: handle.rawValue) else { return nil }
        opens.shrinkIfSparse()
        return open
    }

    /// An open's route, without its client (whose name would be retained and released on
    /// every request).
    @inline(__always)
    func route(_ handle: PipeHandle) -> Route? {
        guard let open = opens[handle.rawValue] else { return nil }
        return Route(pipe: open.pipe, access: open.access, hangUpVersion: open.hangUpVersion, uid: open.uid)
    }

    func open(_ handle: PipeHandle) -> OpenFile? { opens[handle.rawValue] }

    mutating func setHangUpVersion(_ version: UInt64, of handle: PipeHandle) {
        opens[handle.rawValue]?.hangUpVersion = version
    }

    /// The opens of the given pipes, each pipe's oldest first.
    func byInode(_ inodes: Set<InodeNumber>) -> [InodeNumber: [(PipeHandle, OpenFile)]] {
        let found = handles.filter { inodes.contains($0.value.inode) }
        return Dictionary(grouping: found.map { ($0.key, $0.value) }, by: { $0.1.inode })
            .mapValues { $0.sorted { $0.0.rawValue < $1.0.rawValue } }
    }
}
