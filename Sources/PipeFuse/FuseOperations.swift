import CFuse3
import Glibc
import PipeCore
import SystemPackage

/// The `fuse_lowlevel_ops` table: C callbacks that unpack their arguments (valid only
/// during the call; inode numbers and pipe handles as their own types) and hand them to
/// `FuseFilesystem`. C callbacks cannot capture, so
/// the filesystem is found through the session's userdata.
enum FuseOperations {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            guard let connection else { return }
            // libfuse refuses a max_read here other than the mount option's.
            if let userdata {
                connection.pointee.max_read = Unmanaged<FuseFilesystem>.fromOpaque(userdata).takeUnretainedValue().maxRead
            }
            // Shell `>` arrives as an open with O_TRUNC, which a pipe ignores.
            if connection.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 {
                connection.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
            }
            // Fewer, larger writes: the kernel allows up to 1 MiB per request.
            connection.pointee.max_write = 1 << 20
        }
        ops.lookup = { req, parent, name in
            FuseOperations.serve(req) { fs, request in fs.lookup(request, parent: InodeNumber(parent), name: Array(bytesOf: name)) }
        }
        ops.forget = { req, inode, count in
            FuseOperations.serve(req) { fs, request in fs.forget(request, inodes: [(InodeNumber(inode), count)]) }
        }
        ops.forget_multi = { req, count, forgets in
            FuseOperations.serve(req) { fs, request in
                let list = forgets.map { UnsafeBufferPointer(start: $0, count: count) } ?? UnsafeBufferPointer(start: nil, count: 0)
                fs.forget(request, inodes: list.map { (InodeNumber($0.ino), $0.nlookup) })
            }
        }
        ops.getattr = { req, inode, _ in
            FuseOperations.serve(req) { fs, request in fs.getattr(request, inode: InodeNumber(inode)) }
        }
        ops.setattr = { req, inode, attributes, toSet, _ in
            FuseOperations.serve(req) { fs, request in
                let wanted = attributes?.pointee ?? stat()
                let changes = AttributeChanges(
                    size: toSet & FUSE_SET_ATTR_SIZE != 0 ? Int64(wanted.st_size) : nil,
                    permissions: toSet & FUSE_SET_ATTR_MODE != 0 ? UInt32(wanted.st_mode) & 0o7777 : nil,
                    uid: toSet & FUSE_SET_ATTR_UID != 0 ? UInt32(wanted.st_uid) : nil,
                    gid: toSet & FUSE_SET_ATTR_GID != 0 ? UInt32(wanted.st_gid) : nil)
                fs.setattr(request, inode: InodeNumber(inode), changes: changes)
            }
        }
        // Names cannot be made or renamed: each name is a pipe already. Only a persisted
        // pipe can be removed.
        ops.mknod = { req, _, _, _, _ in FuseOperations.serve(req) { _, request in request.fail(.notPermitted) } }
        ops.mkdir = { req, _, _, _ in FuseOperations.serve(req) { _, request in request.fail(.notPermitted) } }
        ops.unlink = { req, parent, name in
            FuseOperations.serve(req) { fs, request in fs.unlink(request, parent: InodeNumber(parent), name: Array(bytesOf: name)) }
        }
        ops.rmdir = { req, _, _ in FuseOperations.serve(req) { _, request in request.fail(.notPermitted) } }
        ops.symlink = { req, _, _, _ in FuseOperations.serve(req) { _, request in request.fail(.notPermitted) } }
        ops.rename = { req, _, _, _, _, _ in FuseOperations.serve(req) { _, request in request.fail(.notPermitted) } }
        ops.link = { req, _, _, _ in FuseOperations.serve(req) { _, request in request.fail(.notPermitted) } }
        ops.open = { req, inode, info in
            FuseOperations.serve(req, info) { fs, request, info in fs.open(request, inode: InodeNumber(inode), flags: info.flags) }
        }
        ops.read = { req, inode, size, offset, info in
            FuseOperations.serve(req, info) { fs, request, info in
                fs.read(request, inode: InodeNumber(inode), handle: PipeHandle(rawValue: info.fh), size: size, offset: Int64(offset), flags: info.flags)
            }
        }
        ops.write = { req, inode, buffer, size, offset, info in
            FuseOperations.serve(req, info) { fs, request, info in
                fs.write(request, inode: InodeNumber(inode), handle: PipeHandle(rawValue: info.fh), bytes: UnsafeRawBufferPointer(start: buffer, count: buffer == nil ? 0 : size),
                         offset: Int64(offset), flags: info.flags)
            }
        }
        ops.flush = { req, _, _ in FuseOperations.serve(req) { _, request in request.succeed() } }
        ops.fsync = { req, _, _, _ in FuseOperations.serve(req) { _, request in request.succeed() } }
        ops.release = { req, _, info in
            FuseOperations.serve(req, info) { fs, request, info in fs.release(request, handle: PipeHandle(rawValue: info.fh)) }
        }
        ops.poll = { req, _, info, pollHandle in
            FuseOperations.serve(req, info) { fs, request, info in fs.poll(request, handle: PipeHandle(rawValue: info.fh), pollHandle: pollHandle) }
        }
        ops.opendir = { req, inode, _ in
            FuseOperations.serve(req) { fs, request in fs.opendir(request, inode: InodeNumber(inode)) }
        }
        ops.readdir = { req, _, size, offset, info in
            FuseOperations.serve(req, info) { fs, request, info in fs.readdir(request, handle: info.fh, size: size, offset: Int(offset)) }
        }
        ops.releasedir = { req, _, info in
            FuseOperations.serve(req, info) { fs, request, info in fs.releasedir(request, handle: info.fh) }
        }
        ops.getxattr = { req, inode, name, size in
            FuseOperations.serve(req) { fs, request in fs.getxattr(request, inode: InodeNumber(inode), name: Array(bytesOf: name), size: size) }
        }
        ops.listxattr = { req, inode, size in
            FuseOperations.serve(req) { fs, request in fs.listxattr(request, inode: InodeNumber(inode), size: size) }
        }
        ops.setxattr = { req, inode, name, value, size, flags in
            FuseOperations.serve(req) { fs, request in
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                fs.setxattr(request, inode: InodeNumber(inode), name: Array(bytesOf: name), value: bytes, flags: flags)
            }
        }
        ops.removexattr = { req, inode, name in
            FuseOperations.serve(req) { fs, request in fs.removexattr(request, inode: InodeNumber(inode), name: Array(bytesOf: name)) }
        }
        return ops
    }
}

extension FuseOperations {
    /// Hands a request to the filesystem it belongs to (the session's userdata). libfuse
    /// never passes a null request; a request without userdata is answered EIO.
    static func serve(_ req: fuse_req_t?, _ body: (FuseFilesystem, consuming FuseRequest) -> Void) {
        guard let req else { return }
        guard let filesystem = FuseFilesystem.from(req) else { return FuseRequest(req).fail(.ioError) }
        body(filesystem, FuseRequest(req))
    }

    /// The same for an operation on an open file; libfuse always passes its file info.
    static func serve(_ req: fuse_req_t?, _ info: UnsafeMutablePointer<fuse_file_info>?,
                      _ body: (FuseFilesystem, consuming FuseRequest, fuse_file_info) -> Void) {
        FuseOperations.serve(req) { filesystem, request in
            guard let info else { return request.fail(.badFileDescriptor) }
            body(filesystem, request, info.pointee)
        }
    }
}

extension FuseFilesystem {
    /// The filesystem a request belongs to (the session's userdata).
    static func from(_ req: fuse_req_t) -> FuseFilesystem? {
        fuse_req_userdata(req).map { Unmanaged<FuseFilesystem>.fromOpaque($0).takeUnretainedValue() }
    }

    static func notifyPoll(_ handle: OpaquePointer) { _ = fuse_lowlevel_notify_poll(handle) }

    static func destroyPollHandle(_ handle: OpaquePointer) { fuse_pollhandle_destroy(handle) }
}

extension Array where Element == UInt8 {
    /// The bytes of a C string, without its NUL.
    init(bytesOf string: UnsafePointer<CChar>?) {
        guard let string else { self = []; return }
        self = Array(UnsafeRawBufferPointer(start: string, count: strlen(string)))
    }
}
