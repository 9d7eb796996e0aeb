import SystemPackage

/// The whole status table in a few requests: the mount root's `user.npfs.status.INODE`
/// holds the live pipes from inode INODE on, in inode order, as many as fit the caller's
/// buffer (at most 64 KiB, the kernel's limit for one attribute value). A reader asks for
/// the page after the last inode it got until a page is empty, as `readdir` pages through
/// a directory: a pipe made meanwhile may or may not appear, none appears twice.
///
/// A record is fields each ended by a NUL byte: `ino=N`, `name=BYTES` (a name holds no NUL),
/// then `KEY=VALUE` for every pipe attribute, then `client=LINE` for each open (see
/// `PipeClient.line`), as many as fit `clientBudget` bytes, and `more_clients=N` for those
/// left out; an empty field ends the record. So a record always fits a page, and a page
/// always holds at least one record while pipes remain (a buffer too small for it gets
/// ERANGE, as for any attribute): an empty page is the end. Pipes the caller may not read
/// are left out, as their attributes would be.
package enum StatusPage {
    /// The attribute name's prefix; the decimal inode to start from follows.
    package static let prefix = "user.npfs.status."
    /// The largest page: the kernel's limit for an attribute value (XATTR_SIZE_MAX).
    package static let maximumSize = 65_536
    /// The most bytes of client lines in one record.
    package static let clientBudget = 16 * 1024

    package struct Record: Sendable, Equatable {
        package var inode: UInt64
        package var name: [UInt8]
        /// Every `PipeAttribute`'s value, by its name.
        package var values: [String: String]
        /// The pipe's opens, oldest first (`PipeClient.line`), as many as fit `clientBudget`.
        package var clients: [String]
        /// The opens left out of `clients`.
        package var moreClients: Int

        package init(inode: UInt64, name: [UInt8], values: [String: String], clients: [String] = [], moreClients: Int = 0) {
            self.inode = inode
            self.name = name
            self.values = values
            self.clients = clients
            self.moreClients = moreClients
        }
    }

    /// The inode a page name starts from, if it is one (`user.npfs.status.` and digits).
    package static func startInode(_ xattrName: [UInt8]) -> UInt64? {
        let bytes = Array(prefix.utf8)
        guard xattrName.starts(with: bytes) else { return nil }
        let digits = xattrName.dropFirst(bytes.count)
        guard !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }

    package static func encode(_ record: Record) -> [UInt8] {
        var bytes = Array("ino=\(record.inode)".utf8) + [0] + Array("name=".utf8) + record.name + [0]
        for key in record.values.keys.sorted() { bytes += Array("\(key)=\(record.values[key] ?? "")".utf8) + [0] }
        for client in record.clients { bytes += Array("client=\(client)".utf8) + [0] }
        if record.moreClients > 0 { bytes += Array("more_clients=\(record.moreClients)".utf8) + [0] }
        return bytes + [0]
    }

    /// The records of a page; a malformed tail is left out.
    package static func decode(_ page: [UInt8]) -> [Record] {
        var records: [Record] = []
        var current: Record?
        for field in page.split(separator: 0, omittingEmptySubsequences: false) {
            guard !field.isEmpty else {
                if let record = current { records.append(record) }
                current = nil
                continue
            }
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: field[..<equals], as: UTF8.self)
            let value = field[(equals + 1)...]
            switch key {
            case "ino": current = Record(inode: UInt64(String(decoding: value, as: UTF8.self)) ?? 0, name: [], values: [:])
            case "name": current?.name = Array(value)
            case "client": current?.clients.append(String(decoding: value, as: UTF8.self))
            case "more_clients": current?.moreClients = Int(String(decoding: value, as: UTF8.self)) ?? 0
            default: current?.values[key] = String(decoding: value, as: UTF8.self)
            }
        }
        return records
    }
}

extension PipeRegistry {
    /// A pipe a status page may list: its status read when needed, and its clients if the
    /// store gave them (a shared store's, on every host).
    private typealias Candidate = (inode: UInt64, name: [UInt8], status: () -> PipeStatus, clients: [PipeClient]?)

    /// A page of the status table (see `StatusPage`): live pipes from `inode` on, those
    /// `caller` may read, as many whole records as fit in `size` bytes, and never none while
    /// one remains (the reply is then too long for `size`: ERANGE).
    package func statusPage(from inode: UInt64, size: Int, caller: Caller) -> [UInt8] {
        var caller = caller
        // A shared store's: every pipe of the space, with its clients on every host, as the
        // server has them (numbered as readdir numbers them); a local store's: the live
        // pipes, whose status and opens are read only for those that fit a page.
        let shared = store.sharedStatus(of: nil).map { pipes in
            let known = state.withLock { state in pipes.map { state.names.inodeByKey[$0.key] } }
            return zip(pipes, known).map { pipe, inode -> Candidate in
                ((inode ?? InodeNumber.derived(from: pipe.key)).rawValue, pipe.key, { pipe.status }, pipe.clients)
            }
        }
        let pipes = (shared ?? state.withLock { state in
            state.names.nodes.values.compactMap { node -> Candidate? in
                node.pipe.map { pipe in (node.inode.rawValue, node.name.bytes, { pipe.status }, nil) }
            }
        }).filter { $0.inode >= inode }.sorted { $0.inode < $1.inode }
        // At most this many records fit a page (none is shorter than 100 bytes): of the
        // pipes the caller may read, only these need their opens.
        var readable: [(inode: UInt64, name: [UInt8], status: PipeStatus, clients: [PipeClient]?)] = []
        for pipe in pipes where readable.count < StatusPage.maximumSize / 100 {
            let status = pipe.status()
            // The caller's groups are read (with no lock held) once, if some pipe needs them.
            if Self.mayRead(status.ownership, &caller) { readable.append((pipe.inode, pipe.name, status, pipe.clients)) }
        }
        let opens = opensByInode(Set(readable.filter { $0.clients == nil }.map { InodeNumber($0.inode) }))
        var page: [UInt8] = []
        for (inode, name, status, clients) in readable {
            var values: [String: String] = [:]
            for attribute in PipeAttribute.allCases { values[attribute.rawValue] = attribute.value(in: status) }
            let (lines, more) = Self.clientLines(clients ?? Self.clients(opens[InodeNumber(inode)] ?? []), budget: StatusPage.clientBudget)
            let record = StatusPage.encode(StatusPage.Record(inode: inode, name: name, values: values, clients: lines, moreClients: more))
            guard page.isEmpty || page.count + record.count <= min(size, StatusPage.maximumSize) else { break }
            page += record
        }
        return page
    }

    /// Client lines (each cut at 1 KiB) while they fit `budget` bytes with their separators,
    /// and how many were left out.
    static func clientLines(_ clients: [PipeClient], budget: Int) -> (lines: [String], more: Int) {
        var lines: [String] = []
        var used = 0
        for client in clients {
            let line = String(client.line.prefix(1024))
            guard used + line.utf8.count + 16 <= budget else { break }
            used += line.utf8.count + 16
            lines.append(line)
        }
        return (lines, clients.count - lines.count)
    }

    /// `user.npfs.clients`: a line per open of the pipe (`PipeClient.line`), oldest first,
    /// as many whole lines as fit an attribute value, then `more=N` for those left out.
    /// ENOENT if the pipe is not live, EACCES if `caller` may not read it.
    package func clientsText(of inode: InodeNumber, caller: Caller) throws(Errno) -> String {
        let (lines, more) = Self.clientLines(try clients(of: inode, caller: caller), budget: StatusPage.maximumSize - 32)
        return lines.map { $0 + "\n" }.joined() + (more > 0 ? "more=\(more)\n" : "")
    }
}
