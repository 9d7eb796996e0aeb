import PipeCore
import SystemPackage

/// A mounted npfs as a client sees it: the daemon behind it, its live pipes, and their
/// settings and figures, read and changed through extended attributes. Opens no pipe, so
/// it creates, holds and disturbs none.
package struct NpfsMount: Sendable {
    /// The mount point, absolute.
    package let path: String

    package init(path: String) { self.path = path }

    private var pathBytes: [UInt8] { Array(path.utf8) }

    /// A pipe's path: the mount point, `/`, and the name's bytes.
    package func pipePath(_ name: [UInt8]) -> [UInt8] { pathBytes + [UInt8(ascii: "/")] + name }

    /// The process serving the mount (its root's `user.npfs.pid`). Throws ENOTCONN for a
    /// mount whose daemon died, ENODATA or ENOTSUP for anything but npfs.
    package func daemonProcess() throws(Errno) -> Int32 {
        let value = try Syscalls.getxattr(pathBytes, AttributeName.daemonPid.bytes)
        guard let pid = Int32(String(decoding: value, as: UTF8.self)), pid > 0 else { throw .invalidArgument }
        return pid
    }

    /// The live pipes' names, as bytes, sorted.
    package func livePipes() throws(Errno) -> [[UInt8]] {
        try Syscalls.directoryEntries(pathBytes).map(\.name).sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Every live pipe the caller may read, with all its attributes, in inode order: the
    /// root's status pages, 64 KiB a request (see `StatusPage`).
    package func statusRecords() throws(Errno) -> [StatusPage.Record] {
        var records: [StatusPage.Record] = []
        var next: UInt64 = 0
        while true {
            let page = try Syscalls.getxattr(pathBytes, AttributeName.statusPage(from: next).bytes, size: StatusPage.maximumSize)
            let found = StatusPage.decode(page)
            guard let last = found.last, last.inode >= next else { return records }
            records += found
            next = last.inode + 1
        }
    }

    /// The mount's usage against its limits (the root's `user.npfs.usage`), by name:
    /// `pipes`, `max_pipes`, `memory`, `max_memory`, `user_memory`, ...
    package func usage() throws(Errno) -> [String: Int] {
        try rootLines(.usage).compactMapValues { Int($0) }
    }

    /// A cluster mount's cluster (the root's `user.npfs.cluster`): `server`, `space`,
    /// `host`, `id`, `hosts`, and `connected` or `disconnected_since`; nil on a local mount.
    package func cluster() -> [String: String]? { try? rootLines(.cluster) }

    /// How the mount's requests travel (the root's `user.npfs.transport`): `transport`
    /// (`dev_fuse`) and `io_uring` (`offered`, `not_offered` or `unknown`, what the kernel
    /// offered at INIT); nil from a daemon that does not say.
    package func transport() -> [String: String]? { try? rootLines(.transport) }

    /// A root attribute of `KEY=VALUE` lines.
    private func rootLines(_ attribute: AttributeName) throws(Errno) -> [String: String] {
        let text = String(decoding: try Syscalls.getxattr(pathBytes, attribute.bytes), as: UTF8.self)
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    /// One attribute of a live pipe. ENOENT if it is not live, EACCES if the caller may not read it.
    package func attribute(_ attribute: PipeAttribute, of name: [UInt8]) throws(Errno) -> String {
        String(decoding: try Syscalls.getxattr(pipePath(name), AttributeName.attribute(attribute, of: .this).bytes), as: UTF8.self)
    }

    /// Up to `bytes` of the oldest bytes buffered in a live pipe (at most 4096), left there.
    /// ENOENT if it is not live, EACCES if the caller may not read it.
    package func peek(_ name: [UInt8], bytes: Int) throws(Errno) -> [UInt8] {
        try Syscalls.getxattr(pipePath(name), AttributeName.peek(of: .this).bytes, size: bytes)
    }

    /// Changes settings of a live pipe, in order, through the mount root, which works while
    /// a writer waits in the pipe (the writer holds the pipe's inode lock, not the root's)
    /// and for names of any length. The first change that fails stops the rest.
    package func set(_ name: [UInt8], _ changes: [(PipeAttribute, String)]) throws(Errno) {
        let request = PipeAttribute.setRequest(pipe: name, changes: changes)
        try Syscalls.setxattr(pathBytes, AttributeName.setRequest.bytes, request)
    }
}
