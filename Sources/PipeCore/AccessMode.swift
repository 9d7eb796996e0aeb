/// Which ends of a pipe an open holds, from the open flags' access mode.
package enum AccessMode: Sendable, Equatable {
    case read, write, readWrite

    /// Maps `O_RDONLY` (0), `O_WRONLY` (1) and `O_RDWR` (2); anything else is invalid.
    package init?(openFlags: Int32) {
        switch openFlags & 3 {
        case 0: self = .read
        case 1: self = .write
        case 2: self = .readWrite
        default: return nil
        }
    }

    /// The access mode's open flags: `O_RDONLY` (0), `O_WRONLY` (1) or `O_RDWR` (2), as
    /// a machine's state and the cluster's `opens` table keep it too.
    package var openFlags: Int32 {
        switch self {
        case .read: 0
        case .write: 1
        case .readWrite: 2
        }
    }

    package var reads: Bool { self != .write }
    package var writes: Bool { self != .read }

    /// The permission bits (of one class: owner, group or others) it needs: 4 read, 2 write.
    package var permissionBits: UInt32 { (reads ? 4 : 0) | (writes ? 2 : 0) }
}
