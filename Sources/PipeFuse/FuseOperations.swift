import CFuse3
import Glibc
import PipeCore
import SystemPackage

/// The `fuse_lowlevel_ops` table: C callbacks that unpack their arguments (valid only
/// during the call) and hand them to `FuseFilesystem`. C callbacks cannot capture, so
/// the filesystem is found through the session's userdata.
enum FuseOperations {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { _, connection in
            guard let connection else { return }
            // Shell `>` arrives as an open with O_TRUNC, which a pipe ignores.
            if connection.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 {
                connection.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
            }
            // Fewer, larger writes: the kernel allows up to 1 MiB per request.
            connection.pointee.max_write = 1 << 20
        }
        ops.lookup = { req, parent, name in
            FuseFilesystem.from(req!).lookup(FuseRequest(req!), parent: parent, name: Array(bytesOf: name))
        }
        ops.forget = { req, inode, count in
            FuseFilesystem.from(req!).forget(FuseRequest(req!), inode: inode, count: count)
        }
        ops.forget_multi = { req, count, forgets in
            let fs = FuseFilesystem.from(req!)
            for i in 0..<count { fs.registry.forget(InodeNumber(forgets![i].ino), count: forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, inode, _ in
            FuseFilesystem.from(req!).getattr(FuseRequest(req!), inode: inode)
        }
        ops.setattr = { req, inode, attributes, toSet, _ in
            let changes = AttributeChanges(
                size: toSet & FUSE_SET_ATTR_SIZE != 0 ? Int64(attributes!.pointee.st_size) : nil,
                ownerOrMode: toSet & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0)
            FuseFilesystem.from(req!).setattr(FuseRequest(req!), inode: inode, changes: changes)
        }
        // Names cannot be made, renamed or removed: each name is a pipe already.
        ops.mknod = { req, _, _, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.mkdir = { req, _, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.unlink = { req, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.rmdir = { req, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.symlink = { req, _, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.rename = { req, _, _, _, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.link = { req, _, _, _ in FuseRequest(req!).fail(.notPermitted) }
        ops.open = { req, inode, info in
            FuseFilesystem.from(req!).open(FuseRequest(req!), inode: inode, flags: info!.pointee.flags)
        }
        ops.read = { req, inode, size, offset, info in
            FuseFilesystem.from(req!).read(FuseRequest(req!), inode: inode, handle: info!.pointee.fh, size: size,
                                    offset: Int64(offset), flags: info!.pointee.flags)
        }
        ops.write = { req, inode, buffer, size, offset, info in
            FuseFilesystem.from(req!).write(FuseRequest(req!), inode: inode, handle: info!.pointee.fh,
                                     bytes: UnsafeRawBufferPointer(start: buffer, count: size),
                                     offset: Int64(offset), flags: info!.pointee.flags)
        }
        ops.flush = { req, _, _ in FuseRequest(req!).succeed() }
        ops.fsync = { req, _, _, _ in FuseRequest(req!).succeed() }
        ops.release = { req, _, info in
            FuseFilesystem.from(req!).release(FuseRequest(req!), handle: info!.pointee.fh)
        }
        ops.poll = { req, _, info, pollHandle in
            FuseFilesystem.from(req!).poll(FuseRequest(req!), handle: info!.pointee.fh, pollHandle: pollHandle)
        }
        ops.opendir = { req, inode, _ in
            FuseFilesystem.from(req!).opendir(FuseRequest(req!), inode: inode)
        }
        ops.readdir = { req, _, size, offset, info in
            FuseFilesystem.from(req!).readdir(FuseRequest(req!), handle: info!.pointee.fh, size: size, offset: Int(offset))
        }
        ops.releasedir = { req, _, info in
            FuseFilesystem.from(req!).releasedir(FuseRequest(req!), handle: info!.pointee.fh)
        }
        ops.getxattr = { req, inode, name, size in
            FuseFilesystem.from(req!).getxattr(FuseRequest(req!), inode: inode, name: String(cString: name!), size: size)
        }
        ops.listxattr = { req, inode, size in
            FuseFilesystem.from(req!).listxattr(FuseRequest(req!), inode: inode, size: size)
        }
        ops.setxattr = { req, inode, name, value, size, flags in
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            FuseFilesystem.from(req!).setxattr(FuseRequest(req!), inode: inode, name: String(cString: name!),
                                               value: bytes, flags: flags)
        }
        ops.removexattr = { req, _, name in
            FuseFilesystem.from(req!).removexattr(FuseRequest(req!), name: String(cString: name!))
        }
        return ops
    }
}

extension FuseFilesystem {
    /// The filesystem a request belongs to (the session's userdata).
    static func from(_ req: fuse_req_t) -> FuseFilesystem {
        Unmanaged<FuseFilesystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    static func notifyPoll(_ handle: OpaquePointer) { _ = fuse_lowlevel_notify_poll(handle) }

    static func destroyPollHandle(_ handle: OpaquePointer) { fuse_pollhandle_destroy(handle) }
}

extension FuseRequest {
    /// Registers the interrupt callback for a waiting request. libfuse may call it at once,
    /// inside this call, holding the request's lock: the callback must not reply.
    static func registerInterrupt(_ req: fuse_req_t, key: UInt64) {
        fuse_req_interrupt_func(req, { req, data in
            FuseFilesystem.from(req!).interrupted(UInt64(UInt(bitPattern: data)))
        }, UnsafeMutableRawPointer(bitPattern: UInt(key)))
    }
}

extension Array where Element == UInt8 {
    /// The bytes of a C string, without its NUL.
    init(bytesOf string: UnsafePointer<CChar>?) {
        guard let string else { self = []; return }
        self = Array(UnsafeRawBufferPointer(start: string, count: strlen(string)))
    }
}

extension FuseFilesystem {
    /// The process serving the npfs mount at `path` (its root's `user.npfs.pid`).
    /// Throws ENOTCONN for a mount whose daemon died, ENODATA or ENOTSUP for other filesystems.
    public static func daemonProcess(servingMountAt path: String) throws(Errno) -> pid_t {
        var buffer = [UInt8](repeating: 0, count: 32)
        let length = CFuse3.getxattr(path, pidAttribute, &buffer, buffer.count)
        guard length >= 0 else { throw Errno(rawValue: errno) }
        guard let pid = pid_t(String(decoding: buffer[..<length], as: UTF8.self)), pid > 0 else { throw .invalidArgument }
        return pid
    }
}

/// Reading extended attributes of paths under a mount (for `npfs status`).
public enum ExtendedAttributes {
    /// The value of `name` on `path`.
    public static func get(_ path: String, _ name: String) throws(Errno) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let length = CFuse3.getxattr(path, name, &buffer, buffer.count)
            if length >= 0 { return String(decoding: buffer[..<length], as: UTF8.self) }
            guard errno == ERANGE else { throw Errno(rawValue: errno) }
            buffer = [UInt8](repeating: 0, count: buffer.count * 4)
        }
    }
}
