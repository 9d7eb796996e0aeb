import CFuse3
import Glibc
import PipeCore
import SystemPackage

/// Extended attributes: each live pipe's `user.npfs.*` settings and figures, and the
/// mount root's attributes (the daemon's pid, the usage report, `npfs set`'s requests, and
/// every pipe's attributes as `user.npfs.pipe.NAME.ATTRIBUTE`).
extension FuseFilesystem {
    /// `getxattr`: a pipe's `user.npfs.*` settings and figures (ENOENT if the pipe is not
    /// live, ENODATA for other `user.` names), or the root's daemon pid. Replies the value,
    /// its size or ERANGE; EOPNOTSUPP outside the `user.` namespace: npfs keeps no ACLs
    /// and no security labels, and saying so once lets `ls -l` stop asking for every name.
    func getxattr(_ request: consuming FuseRequest, inode: UInt64, name: [UInt8], size: Int) {
        if inode == InodeNumber.root.rawValue && name == Array(PipeAttribute.daemonPidName.utf8) {
            return request.xattr(Array(String(getpid()).utf8), bufferSize: size)
        }
        // The unlisted ones, on the pipe or through the root (`user.npfs.pipe.NAME.clients`).
        let unlisted: (inode: InodeNumber, name: String)?
        do { unlisted = try unlistedAttribute(name, on: inode) } catch { return request.fail(error) }
        if let (target, attribute) = unlisted, attribute == PipeAttribute.clientsName {
            do {
                let text = try registry.clientsText(of: target, caller: request.caller)
                return request.xattr(Array(text.utf8), bufferSize: size)
            } catch {
                return request.fail(error)
            }
        }
        if let (target, attribute) = unlisted, attribute == PipeAttribute.peekName {
            // Sized to the caller's buffer, so that the bytes asked for always fit.
            let limit = size == 0 ? PipeAttribute.peekLimit : min(size, PipeAttribute.peekLimit)
            // By the caller's own read end, if it has one (its thread group, from /proc).
            let caller = request.caller
            let process = ClientIdentity.of(caller).pid
            do {
                return request.xattr(try registry.peek(target, max: limit, caller: caller, process: process), bufferSize: size)
            } catch {
                return request.fail(error)
            }
        }
        if inode == InodeNumber.root.rawValue, let start = StatusPage.startInode(name) {
            // A size query gets the length of a full page; the page itself is cut to the buffer.
            let page = registry.statusPage(from: start, size: size == 0 ? StatusPage.maximumSize : size, caller: request.caller)
            return request.xattr(page, bufferSize: size)
        }
        if inode == InodeNumber.root.rawValue && name == Array(PipeAttribute.usageName.utf8) {
            let user = request.caller.uid
            let report = registry.usage(of: user).report(registry.configuration.limits, user: user)
            return request.xattr(Array(report.utf8), bufferSize: size)
        }
        do {
            let foreign: Errno = name.starts(with: FuseFilesystem.userNamespace) ? .noData : .notSupported
            let (target, attribute) = try pipeAttribute(name, on: inode, foreign: foreign)
            request.xattr(Array(try registry.attribute(attribute, of: target, caller: request.caller).utf8), bufferSize: size)
        } catch {
            request.fail(error)
        }
    }

    /// `listxattr`: every `user.npfs.*` name of a live pipe, the root's pid name.
    /// Replies the names, their size or ERANGE.
    func listxattr(_ request: consuming FuseRequest, inode: UInt64, size: Int) {
        let names: [String]
        if inode == InodeNumber.root.rawValue {
            names = [PipeAttribute.daemonPidName, PipeAttribute.usageName]
        } else if (try? registry.livePipe(InodeNumber(inode))) != nil {
            names = PipeAttribute.allCases.map(\.xattrName)
        } else {
            names = []
        }
        request.xattr(names.flatMap { Array($0.utf8) + [0] }, bufferSize: size)
    }

    /// `setxattr`: changes a live pipe's setting at once. Replies success, ENOENT (not
    /// live), ENODATA (unknown npfs name), EPERM (a figure), EINVAL (bad value), EBUSY
    /// (capacity below what is buffered, framing of a non-empty pipe), EEXIST
    /// (XATTR_CREATE: the attribute always exists) or ENOTSUP (other names).
    ///
    /// On the mount root, `user.npfs.pipe.NAME.SETTING` reaches pipe NAME. That is the way
    /// to change a pipe while a writer waits in it: the kernel holds a writing file's inode
    /// lock, which setxattr on that file needs too, but not the root's.
    func setxattr(_ request: consuming FuseRequest, inode: UInt64, name: [UInt8], value: [UInt8], flags: Int32) {
        if inode == InodeNumber.root.rawValue && name == Array(PipeAttribute.setRequestName.utf8) {
            return setMany(request, value: value)
        }
        do {
            let (target, attribute) = try pipeAttribute(name, on: inode, foreign: .notSupported)
            _ = try registry.livePipe(target)
            if flags & XATTR_CREATE_FLAG != 0 { return request.fail(.fileExists) }
            try registry.setAttribute(attribute, to: String(decoding: value, as: UTF8.self), of: target, caller: request.caller)
            request.succeed()
        } catch {
            request.fail(error)
        }
    }

    /// `setxattr` of the root's `user.npfs.set` (`npfs set`): a pipe named by its bytes, of
    /// any length, and several settings. Replies as `setxattr`, or EINVAL for a malformed request.
    private func setMany(_ request: consuming FuseRequest, value: [UInt8]) {
        do throws(Errno) {
            let (pipe, changes) = try PipeAttribute.parseSetRequest(value)
            guard let inode = try knownInode(pipe) else { throw Errno.noSuchFileOrDirectory }
            try registry.setAttributes(changes, of: inode, caller: request.caller)
            request.succeed()
        } catch {
            request.fail(error)
        }
    }

    /// The pipe and attribute an xattr name means on an inode: a pipe's own
    /// `user.npfs.ATTRIBUTE`, or the root's `user.npfs.pipe.NAME.ATTRIBUTE`. Throws ENODATA
    /// for another `user.npfs.` name, ENOENT for a name the kernel does not know, and
    /// `foreign` for names outside npfs's.
    private func pipeAttribute(_ name: [UInt8], on inode: UInt64, foreign: Errno) throws(Errno) -> (InodeNumber, PipeAttribute) {
        let unknown: Errno = PipeAttribute.isOurs(name) ? .noData : foreign
        guard inode == InodeNumber.root.rawValue else {
            guard let attribute = PipeAttribute(xattrName: name) else { throw unknown }
            return (InodeNumber(inode), attribute)
        }
        guard let (pipe, attribute) = PipeAttribute.parseRootName(name) else { throw unknown }
        guard let known = try knownInode(pipe) else { throw .noSuchFileOrDirectory }
        return (known, attribute)
    }

    /// The inode of a pipe named in a root attribute, if the kernel knows the name;
    /// ENAMETOOLONG (or EINVAL) for a name no pipe can have.
    private func knownInode(_ name: [UInt8]) throws(Errno) -> InodeNumber? {
        registry.knownInode(named: try PipeName(bytes: name))
    }

    /// `user.npfs.clients` or `user.npfs.peek` (attributes that are not listed): on a pipe,
    /// or on the root as `user.npfs.pipe.NAME.clients` and `.peek`. nil for other names;
    /// ENOENT for a pipe name the kernel does not know.
    private func unlistedAttribute(_ name: [UInt8], on inode: UInt64) throws(Errno) -> (InodeNumber, String)? {
        let unlisted = [PipeAttribute.clientsName, PipeAttribute.peekName]
        guard inode == InodeNumber.root.rawValue else {
            return unlisted.first { name == Array($0.utf8) }.map { (InodeNumber(inode), $0) }
        }
        guard let (pipe, key) = PipeAttribute.splitRootName(name),
              let attribute = unlisted.first(where: { $0 == PipeAttribute.prefix + key }) else { return nil }
        guard let known = try knownInode(pipe) else { throw .noSuchFileOrDirectory }
        return (known, attribute)
    }

    /// `removexattr`: npfs's attributes cannot be removed (EPERM); other `user.` names do
    /// not exist (ENODATA); other namespaces are not supported (EOPNOTSUPP).
    func removexattr(_ request: consuming FuseRequest, name: [UInt8]) {
        let ours = PipeAttribute(xattrName: name) != nil || PipeAttribute.parseRootName(name) != nil
            || name == Array(PipeAttribute.peekName.utf8) || name == Array(PipeAttribute.clientsName.utf8)
            || [PipeAttribute.daemonPidName, PipeAttribute.usageName, PipeAttribute.setRequestName].contains { name == Array($0.utf8) }
        request.fail(ours ? .notPermitted : name.starts(with: FuseFilesystem.userNamespace) ? .noData : .notSupported)
    }

    /// The one namespace npfs keeps attributes in.
    static let userNamespace = Array("user.".utf8)
}
