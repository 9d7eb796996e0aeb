/// Protection of writers from pipes planted by other users, as `fs.protected_fifos`
/// protects them from FIFOs planted in a sticky world-writable directory such as `/tmp`
/// (`protected_pipes`). It concerns opens with O_CREAT (what the shell's `>` and `>>` do)
/// of a live pipe whose owner is neither the caller nor the mount's owner.
package enum PipeProtection: Int, Sendable, Equatable {
    /// No protection: the pipe's permission bits decide alone.
    case off = 0
    /// Refused (EACCES) unless the pipe is shared with the caller on purpose: the caller is
    /// in the pipe's group and the group's bits allow the access (`chgrp team`, 0660).
    case group = 1
    /// Refused (EACCES) always, as the kernel's level 2.
    case strict = 2

    /// Whether an O_CREAT open by `caller` for `access` of a live pipe with `ownership` is
    /// refused, on a mount owned by `mountOwner`.
    package func refuses(_ caller: Caller, _ access: AccessMode, of ownership: Ownership, mountOwner: UInt32) -> Bool {
        guard self != .off, ownership.uid != caller.uid, ownership.uid != mountOwner else { return false }
        guard self == .group else { return true }
        let wanted = access.permissionBits
        return !(caller.isMember(of: ownership.gid) && (ownership.permissions >> 3) & wanted == wanted)
    }
}
