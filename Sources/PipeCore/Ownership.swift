import SystemPackage

/// A pipe's owner, group and permission bits, and the rules of chmod(2), chown(2) and
/// open(2) for them, as the kernel's `generic_permission` applies them.
///
/// The kernel checks the same bits itself (`default_permissions`), but on attributes it
/// may have cached a moment ago; the core checks again on fresh ones, so a pipe created
/// by another user, or one just chmod'ed, is enforced on the very next open.
package struct Ownership: Sendable, Equatable {
    package var uid: UInt32
    package var gid: UInt32
    /// The permission bits (at most 0o7777).
    package var permissions: UInt32

    package init(uid: UInt32, gid: UInt32, permissions: UInt32) {
        self.uid = uid
        self.gid = gid
        self.permissions = permissions & 0o7777
    }

    /// Whether `caller` may open the pipe for `access`: root always; the owner by the
    /// owner's bits, a member of the group by the group's, anyone else by the others'.
    package func permits(_ caller: Caller, _ access: AccessMode) -> Bool {
        if caller.isRoot { return true }
        let wanted = access.permissionBits
        let bits: UInt32
        if caller.uid == uid {
            bits = permissions >> 6
        } else if (permissions >> 3) & wanted != permissions & wanted && caller.isMember(of: gid) {
            bits = permissions >> 3   // the group's bits matter only where they differ from the others'
        } else {
            bits = permissions
        }
        return bits & wanted == wanted
    }

    /// Whether `caller` may change the pipe's settings, mode and group: its owner or root.
    package func isOwned(by caller: Caller) -> Bool { caller.isRoot || caller.uid == uid }

    /// The ownership after a chmod/chown by `caller`. EPERM where chmod(2) and chown(2)
    /// would refuse: a mode change by another than the owner, an owner change by another
    /// than root, a group change to a group the owner is not in.
    package func changed(by caller: Caller, permissions newPermissions: UInt32?, uid newUID: UInt32?,
                        gid newGID: UInt32?) throws(Errno) -> Ownership {
        var result = self
        if let newUID, newUID != uid {
            guard caller.isRoot else { throw .notPermitted }
            result.uid = newUID
        }
        if let newGID, newGID != gid {
            guard caller.isRoot || (caller.uid == uid && caller.isMember(of: newGID)) else { throw .notPermitted }
            result.gid = newGID
        }
        if let newPermissions {
            guard isOwned(by: caller) else { throw .notPermitted }
            result.permissions = newPermissions & 0o7777
        }
        return result
    }
}
