/// What an extended attribute name means on an npfs inode, parsed once: each of the
/// adapter's `getxattr`, `setxattr`, `listxattr` and `removexattr` is one `switch` over
/// it, and the client library and the command line build their names from it.
package enum AttributeName: Equatable, Sendable {
    /// Whose attribute: the pipe the request is made on, or (through the mount root)
    /// the pipe of that name.
    package enum Pipe: Equatable, Sendable {
        case this
        case named([UInt8])
    }

    /// A pipe's setting or figure: `user.npfs.ATTRIBUTE` on the pipe,
    /// `user.npfs.pipe.NAME.ATTRIBUTE` on the root.
    case attribute(PipeAttribute, of: Pipe)
    /// A pipe's oldest buffered bytes, left in place (not listed).
    case peek(of: Pipe)
    /// A pipe's opens, a line each (not listed).
    case clients(of: Pipe)
    /// The root's: the pid of the daemon serving the mount.
    case daemonPid
    /// The root's: the mount's usage against its limits (`MountUsage.report`).
    case usage
    /// The root's, on a cluster mount: the server, space, this host and the hosts seen,
    /// and whether it is connected (`PipeStore.clusterSummary`).
    case cluster
    /// The root's: how requests travel (`transport=dev_fuse`) and whether the kernel
    /// offered FUSE over io_uring at INIT (`io_uring=offered`, `not_offered`, `unknown`).
    case transport
    /// The root's: a page of the status table, from an inode on (see `StatusPage`).
    case statusPage(from: UInt64)
    /// The root's: `npfs set`'s request (see `PipeAttribute.setRequest`).
    case setRequest
    /// Another name in npfs's namespace, `user.npfs.`: none such exists.
    case unknown
    /// Another name in the `user.` namespace: npfs keeps none.
    case otherUser
    /// A name in another namespace (ACLs, security labels): not supported.
    case otherNamespace

    static let prefix = "user.npfs."
    static let rootPrefix = "user.npfs.pipe."
    static let userNamespace = Array("user.".utf8)

    /// The meaning of `name` on the mount root (`onRoot`) or on a pipe.
    package init(_ name: [UInt8], onRoot: Bool) {
        guard name.starts(with: Self.userNamespace) else { self = .otherNamespace; return }
        guard name.starts(with: Array(Self.prefix.utf8)) else { self = .otherUser; return }
        let key = String(decoding: name.dropFirst(Self.prefix.utf8.count), as: UTF8.self)
        guard onRoot else {
            self = Self.pipeKey(key, of: .this) ?? .unknown
            return
        }
        switch key {
        case "pid": self = .daemonPid
        case "usage": self = .usage
        case "cluster": self = .cluster
        case "transport": self = .transport
        case "set": self = .setRequest
        default:
            if let start = StatusPage.startInode(name) {
                self = .statusPage(from: start)
            } else if let (pipe, key) = Self.splitRootName(name) {
                self = Self.pipeKey(key, of: .named(pipe)) ?? .unknown
            } else {
                self = .unknown
            }
        }
    }

    /// A pipe's key: one of its attributes, `peek` or `clients`.
    private static func pipeKey(_ key: String, of pipe: Pipe) -> AttributeName? {
        switch key {
        case "peek": .peek(of: pipe)
        case "clients": .clients(of: pipe)
        default: PipeAttribute(rawValue: key).map { .attribute($0, of: pipe) }
        }
    }

    /// Splits a root attribute name, `user.npfs.pipe.NAME.KEY`, at its last dot into the
    /// pipe's name (bytes, not empty: a name that is not UTF-8 is matched byte for byte)
    /// and the key.
    static func splitRootName(_ name: [UInt8]) -> (pipe: [UInt8], key: String)? {
        let prefix = Array(rootPrefix.utf8)
        guard name.starts(with: prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.lastIndex(of: UInt8(ascii: ".")), dot != rest.startIndex else { return nil }
        return (Array(rest[..<dot]), String(decoding: rest[(dot + 1)...], as: UTF8.self))
    }

    /// The name, as getxattr(2) and setxattr(2) take it (empty for the ones that stand for
    /// no single name).
    package var bytes: [UInt8] {
        func pipeName(_ pipe: Pipe, _ key: String) -> [UInt8] {
            switch pipe {
            case .this: Array((Self.prefix + key).utf8)
            case .named(let name): Array(Self.rootPrefix.utf8) + name + Array(".\(key)".utf8)
            }
        }
        switch self {
        case .attribute(let attribute, let pipe): return pipeName(pipe, attribute.rawValue)
        case .peek(let pipe): return pipeName(pipe, "peek")
        case .clients(let pipe): return pipeName(pipe, "clients")
        case .daemonPid: return Array((Self.prefix + "pid").utf8)
        case .usage: return Array((Self.prefix + "usage").utf8)
        case .cluster: return Array((Self.prefix + "cluster").utf8)
        case .transport: return Array((Self.prefix + "transport").utf8)
        case .setRequest: return Array((Self.prefix + "set").utf8)
        case .statusPage(let start): return Array((StatusPage.prefix + String(start)).utf8)
        case .unknown, .otherUser, .otherNamespace: return []
        }
    }

    /// Whether it is one of npfs's own names (which exist, and cannot be removed).
    package var isOurs: Bool {
        switch self {
        case .unknown, .otherUser, .otherNamespace: false
        default: true
        }
    }

    /// The string form of `bytes`, for names that are text.
    package var text: String { String(decoding: bytes, as: UTF8.self) }
}
