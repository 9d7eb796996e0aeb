import PipeCore
import Testing

/// Issue 8, item 5: the status table in pages of the mount root's attributes.
@Suite struct StatusPageTests {
    @Test func recordsRoundTripWithAnyNameBytes() {
        let records = [StatusPage.Record(inode: 7, name: Array("new\nline".utf8), values: ["mode": "fifo", "buffered": "3"],
                                         clients: ["pid=1 uid=0 access=read waiting=no since=1.000 command=a=b", "pid=2 uid=0 access=write waiting=open since=2.000 command=c"]),
                       StatusPage.Record(inode: 9, name: [0xFF, 0x3D, 0x41], values: ["capacity": "65536"])]
        #expect(StatusPage.decode(records.flatMap(StatusPage.encode)) == records)
        #expect(StatusPage.decode([]) == [])
        #expect(StatusPage.decode(Array("ino=3\0name=cut".utf8)) == [], "a record without its end is left out")
        #expect(StatusPage.startInode(Array("user.npfs.status.42".utf8)) == 42)
        for bad in ["user.npfs.status.", "user.npfs.status.-1", "user.npfs.status.4x", "user.npfs.statusx", "user.npfs.status.99999999999999999999999"] {
            #expect(StatusPage.startInode(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func pagesHoldWholeRecordsAndCoverEveryPipeOnce() throws {
        let registry = PipeRegistry(configuration: .init(pipe: .defaults))
        var handles: [PipeHandle] = []
        for index in 0..<1000 {
            let inode = registry.lookup(try PipeName("pipe-\(index)"))
            guard case .done(.opened(let handle)) = registry.open(inode, flags: 2, caller: .alice, waiter: RecordingWaiter()) else {
                throw FixtureError.unexpected("open")
            }
            handles.append(handle)
        }
        var seen: [String] = []
        var next: UInt64 = 0
        var pages = 0
        while true {
            let page = registry.statusPage(from: next, size: 4096, caller: .alice)
            #expect(page.count <= 4096)
            let records = StatusPage.decode(page)
            guard let last = records.last else { break }
            #expect(records.allSatisfy { $0.values["mode"] == "fifo" && $0.values["readers"] == "1" && $0.values.count == PipeAttribute.allCases.count })
            seen += records.map { String(decoding: $0.name, as: UTF8.self) }
            next = last.inode + 1
            pages += 1
        }
        #expect(pages > 1, "1000 pipes take several 4 KiB pages")
        #expect(seen.count == 1000 && Set(seen).count == 1000)
        let whole = registry.statusPage(from: 0, size: 1 << 20, caller: .alice)
        #expect(whole.count <= 65_536 && StatusPage.decode(whole).count < 1000, "a page holds at most 64 KiB")
        _ = try registry.changeOwnership(of: registry.lookup(try PipeName("pipe-0")), by: .alice, permissions: 0o600, uid: nil, gid: nil)
        #expect(!StatusPage.decode(registry.statusPage(from: 0, size: 65_536, caller: .bob)).contains { $0.name == Array("pipe-0".utf8) },
                "a pipe the caller may not read is left out")
        for handle in handles { registry.release(handle) }
    }

    /// Issue 12, item 5: a pipe with thousands of opens still makes a record that fits a
    /// page, listing its first clients and a count of the rest; no pipe after it is lost,
    /// and `user.npfs.clients` ends on a whole line with the count of those left out.
    @Test func aPipeWithThousandsOfOpensFitsAPage() throws {
        let registry = PipeRegistry(configuration: .init(pipe: .defaults))
        let busy = registry.lookup(try PipeName("busy")), after = registry.lookup(try PipeName("after"))
        var handles: [PipeHandle] = []
        for (inode, count) in [(busy, 3000), (after, 1)] {
            for _ in 0..<count {
                guard case .done(.opened(let handle)) = registry.open(inode, flags: 2, caller: .alice, waiter: RecordingWaiter(),
                                                                      client: ClientIdentity(pid: 4242, uid: 1001, command: "a-long-command-name")) else {
                    throw FixtureError.unexpected("open")
                }
                handles.append(handle)
            }
        }
        let page = registry.statusPage(from: 0, size: StatusPage.maximumSize, caller: .alice)
        let records = StatusPage.decode(page)
        #expect(records.map { String(decoding: $0.name, as: UTF8.self) } == ["busy", "after"], "every pipe, in one page")
        let first = try #require(records.first)
        #expect(!first.clients.isEmpty && first.clients.count + first.moreClients == 3000)
        #expect(StatusPage.encode(first).count <= StatusPage.clientBudget + 2048)
        #expect(records.last?.clients.count == 1 && records.last?.moreClients == 0)
        // A buffer too small for the first record gets that record (the reply is then
        // ERANGE), never an empty page that would end the listing.
        #expect(StatusPage.decode(registry.statusPage(from: 0, size: 100, caller: .alice)).count == 1)

        let text = try registry.clientsText(of: busy, caller: .alice)
        #expect(text.utf8.count <= StatusPage.maximumSize && text.hasSuffix("\n"))
        let lines = text.split(separator: "\n")
        let listed = lines.dropLast().filter { PipeClient(line: String($0)) != nil }.count
        #expect(listed == lines.count - 1, "whole lines only")
        #expect(lines.last == "more=\(3000 - listed)", "\(lines.last ?? "")")
        for handle in handles { registry.release(handle) }
    }

    /// Issue 12, item 6: a readable pipe after more than a page's worth of unreadable ones
    /// still shows its clients.
    @Test func clientsAreFetchedForTheReadablePipesOfAPage() throws {
        let registry = PipeRegistry(configuration: .init(pipe: .defaults))
        var handles: [PipeHandle] = []
        for index in 0..<700 {
            let inode = registry.lookup(try PipeName("private-\(index)"))
            guard case .done(.opened(let handle)) = registry.open(inode, flags: 2, caller: .alice, waiter: RecordingWaiter()) else {
                throw FixtureError.unexpected("open")
            }
            handles.append(handle)
            _ = try registry.changeOwnership(of: inode, by: .alice, permissions: 0o600, uid: nil, gid: nil)
        }
        let shared = registry.lookup(try PipeName("shared"))
        guard case .done(.opened(let handle)) = registry.open(shared, flags: 2, caller: .bob, waiter: RecordingWaiter()) else {
            throw FixtureError.unexpected("open")
        }
        handles.append(handle)
        let records = StatusPage.decode(registry.statusPage(from: 0, size: StatusPage.maximumSize, caller: .bob))
        #expect(records.map { String(decoding: $0.name, as: UTF8.self) } == ["shared"])
        #expect(records.first?.clients.count == 1, "bob's pipe shows its open")
        for handle in handles { registry.release(handle) }
    }
}
