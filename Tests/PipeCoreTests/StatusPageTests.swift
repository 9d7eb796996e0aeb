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
}
