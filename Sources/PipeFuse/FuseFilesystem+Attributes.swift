import CFuse3
import Glibc
import PipeCore
import SystemPackage

/// Extended attributes: each live pipe's `user.npfs.*` settings and figures, and the
/// mount root's attributes (the daemon's pid, the usage report, `npfs set`'s requests, and
/// every pipe's attributes as `user.npfs.pipe.NAME.ATTRIBUTE`).
extension FuseFilesystem {
    /// `getxattr`: a pipe's `user.npfs.*` settings and figures (ENOENT if the pipe is not
    /// live, ENODATA for other `user.` names), its peek and clients, or the root's daemon
    /// pid, usage and status pages. Replies the value, its size or ERANGE; EOPNOTSUPP
    /// outside the `user.` namespace: npfs keeps no ACLs and no security labels, and saying
    /// so once lets `ls -l` stop asking for every name.
    func getxattr(_ request: consuming FuseRequest, inode: InodeNumber, name: [UInt8], size: Int) {
        // A cluster's pipe: a peek reads its pages from the server, a pipe that no open of
        // this mount holds is read from it, and clients and the status table are the
        // server's (every host's).
        switch registry.store.settingsWait ? AttributeName(name, onRoot: inode == .root) : .unknown {
        case .peek, .attribute, .clients, .statusPage:
            offFuse(request) { self.getxattrNow($0, inode: inode, name: name, size: size) }
        default:
            getxattrNow(request, inode: inode, name: name, size: size)
        }
    }

    private func getxattrNow(_ request: consuming FuseRequest, inode: InodeNumber, name: [UInt8], size: Int) {
        let caller = request.caller
        do throws(Errno) {
            switch AttributeName(name, onRoot: inode == .root) {
            case .attribute(let attribute, let pipe):
                let value = try withTarget(pipe, on: inode) { target throws(Errno) in try registry.attribute(attribute, of: target, caller: caller) }
                request.xattr(Array(value.utf8), bufferSize: size)
            case .peek(let pipe):
                // Sized to the caller's buffer, so that the bytes asked for always fit, and
                // by the caller's own read end if it has one (its thread group, from /proc).
                let limit = size == 0 ? PipeAttribute.peekLimit : min(size, PipeAttribute.peekLimit)
                let bytes = try withTarget(pipe, on: inode) { target throws(Errno) in
                    try registry.peek(target, max: limit, caller: caller, process: ClientIdentity.of(caller).pid)
                }
                request.xattr(bytes, bufferSize: size)
            case .clients(let pipe):
                let text = try withTarget(pipe, on: inode) { target throws(Errno) in try registry.clientsText(of: target, caller: caller) }
                request.xattr(Array(text.utf8), bufferSize: size)
            case .daemonPid:
                request.xattr(Array(String(getpid()).utf8), bufferSize: size)
            case .usage:
                let report = registry.usage(of: caller.uid).report(registry.configuration.limits, user: caller.uid)
                request.xattr(Array(report.utf8), bufferSize: size)
            case .cluster:
                guard let summary = registry.store.clusterSummary else { return request.fail(.noData) }
                request.xattr(Array(summary.utf8), bufferSize: size)
            case .transport:
                request.xattr(Array(transport.attributeText.utf8), bufferSize: size)
            case .statusPage(let start):
                // A size query gets the length of a full page; the page itself is cut to the buffer.
                request.xattr(registry.statusPage(from: start, size: size == 0 ? StatusPage.maximumSize : size, caller: caller),
                              bufferSize: size)
            case .setRequest, .unknown, .otherUser:
                request.fail(.noData)
            case .otherNamespace:
                request.fail(.notSupported)
            }
        } catch {
            request.fail(error)
        }
    }

    /// `listxattr`: every `user.npfs.*` setting and figure of a live pipe; the root's pid
    /// and usage. Replies the names, their size or ERANGE.
    func listxattr(_ request: consuming FuseRequest, inode: InodeNumber, size: Int) {
        let names: [AttributeName]
        if inode == .root {
            names = [.daemonPid, .usage, .transport] + (registry.store.clusterSummary == nil ? [] : [.cluster])
        } else if (try? registry.livePipe(inode)) != nil {
            names = PipeAttribute.allCases.map { .attribute($0, of: .this) }
        } else {
            names = []
        }
        request.xattr(names.flatMap { $0.bytes + [0] }, bufferSize: size)
    }

    /// `setxattr`: changes a live pipe's setting at once. Replies success, ENOENT (not
    /// live), ENODATA (npfs name that is not a setting or figure), EPERM (a figure), EINVAL
    /// (bad value), EBUSY (capacity below what is buffered, framing of a non-empty pipe),
    /// EEXIST (XATTR_CREATE: the attribute always exists) or ENOTSUP (other names).
    ///
    /// On the mount root, `user.npfs.pipe.NAME.SETTING` reaches pipe NAME. That is the way
    /// to change a pipe while a writer waits in it: the kernel holds a writing file's inode
    /// lock, which setxattr on that file needs too, but not the root's.
    func setxattr(_ request: consuming FuseRequest, inode: InodeNumber, name: [UInt8], value: [UInt8], flags: Int32) {
        guard registry.store.settingsWait else { return setxattrNow(request, inode: inode, name: name, value: value, flags: flags) }
        offFuse(request) { self.setxattrNow($0, inode: inode, name: name, value: value, flags: flags) }
    }

    private func setxattrNow(_ request: consuming FuseRequest, inode: InodeNumber, name: [UInt8], value: [UInt8], flags: Int32) {
        do throws(Errno) {
            switch AttributeName(name, onRoot: inode == .root) {
            case .attribute(let attribute, let pipe):
                let caller = request.caller
                try withTarget(pipe, on: inode) { target throws(Errno) in
                    guard registry.isPipe(target) else { throw .noSuchFileOrDirectory }
                    if flags & XATTR_CREATE_FLAG != 0 { throw .fileExists }
                    try registry.setAttribute(attribute, to: String(decoding: value, as: UTF8.self), of: target, caller: caller)
                }
            case .setRequest:
                // `npfs set`: a pipe named by its bytes, of any length, and several settings.
                let (pipe, changes) = try PipeAttribute.parseSetRequest(value)
                let caller = request.caller
                try registry.withName(try PipeName(bytes: pipe)) { target throws(Errno) in
                    try registry.setAttributes(changes, of: target, caller: caller)
                }
            case .peek, .clients, .daemonPid, .usage, .cluster, .transport, .statusPage, .unknown:
                throw .noData
            case .otherUser, .otherNamespace:
                throw .notSupported
            }
            request.succeed()
        } catch {
            request.fail(error)
        }
    }

    /// `removexattr`: npfs's attributes cannot be removed (EPERM); other `user.` names do
    /// not exist (ENODATA); other namespaces are not supported (EOPNOTSUPP).
    func removexattr(_ request: consuming FuseRequest, inode: InodeNumber, name: [UInt8]) {
        switch AttributeName(name, onRoot: inode == .root) {
        case .unknown, .otherUser: request.fail(.noData)
        case .otherNamespace: request.fail(.notSupported)
        case .attribute, .peek, .clients, .daemonPid, .usage, .cluster, .transport, .statusPage, .setRequest: request.fail(.notPermitted)
        }
    }

    /// `body` with the inode an attribute is about: the one asked on, or the pipe named
    /// through the root, as if looked up for the call (a cluster's pipe that lives on other
    /// hosts only has no inode here before; ENAMETOOLONG or EINVAL for a name no pipe can have).
    private func withTarget<T>(_ pipe: AttributeName.Pipe, on inode: InodeNumber,
                               _ body: (InodeNumber) throws(Errno) -> T) throws(Errno) -> T {
        switch pipe {
        case .this: return try body(inode)
        case .named(let name): return try registry.withName(try PipeName(bytes: name), body)
        }
    }
}
