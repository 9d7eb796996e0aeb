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

    private(set) var handles: [PipeHandle: OpenFile] = [:]
    private var nextHandle: UInt64 = 1

    /// Adds an open; returns its new handle.
    mutating func add(_ open: OpenFile) -> PipeHandle {
        let handle = PipeHandle(rawValue: nextHandle)
        nextHandle += 1
        handles[handle] = open
        return handle
    }

    mutating func remove(_ handle: PipeHandle) -> OpenFile? {
        guard let open = handles.removeValue(forKey: handle) else { return nil }
        handles.shrinkIfSparse()
        return open
    }

    /// An open's route, without its client (whose name would be retained and released on
    /// every request).
    @inline(__always)
    func route(_ handle: PipeHandle) -> Route? {
        guard let open = handles[handle] else { return nil }
        return Route(pipe: open.pipe, access: open.access, hangUpVersion: open.hangUpVersion, uid: open.uid)
    }

    mutating func setHangUpVersion(_ version: UInt64, of handle: PipeHandle) {
        handles[handle]?.hangUpVersion = version
    }

    /// The opens of the given pipes, each pipe's oldest first.
    func byInode(_ inodes: Set<InodeNumber>) -> [InodeNumber: [(PipeHandle, OpenFile)]] {
        let opens = handles.filter { inodes.contains($0.value.inode) }
        return Dictionary(grouping: opens.map { ($0.key, $0.value) }, by: { $0.1.inode })
            .mapValues { $0.sorted { $0.0.rawValue < $1.0.rawValue } }
    }
}
