import PipeCore
import SystemPackage
import Testing

/// Issue 8, item 4: who is connected to a pipe, and what each open waits for.
@Suite struct ClientTests {
    @Test func linesRoundTrip() {
        let client = PipeClient(identity: ClientIdentity(pid: 42, uid: 1000, command: "my tool"), access: .readWrite,
                                since: Timestamp(seconds: 1_700_000_000, nanoseconds: 5_000_000), waiting: .read)
        #expect(client.line == "pid=42 uid=1000 access=read-write waiting=read since=1700000000.005 command=my tool")
        #expect(PipeClient(line: client.line) == client)
        #expect(PipeClient(line: "pid=x uid=1 access=read waiting=no since=1.000 command=a") == nil)
        #expect(PipeClient(line: "no command here") == nil)
    }

    @Test func eachOpenIsListedWithWhatItWaitsFor() throws {
        let f = try Fixture(capacity: 4096)
        let cat = ClientIdentity(pid: 100, uid: 1001, command: "cat")
        let reader = RecordingWaiter()
        #expect(f.registry.open(f.inode, flags: Fixture.read, caller: .alice, waiter: reader, client: cat) == .queued)
        #expect(try f.registry.clients(of: f.inode, caller: .alice).map(\.waiting) == [.open])
        let writer = RecordingWaiter()
        let tee = ClientIdentity(pid: 200, uid: 1001, command: "tee")
        guard case .done(.opened(let w)) = f.registry.open(f.inode, flags: Fixture.write, caller: .alice, waiter: writer, client: tee) else {
            throw FixtureError.unexpected("the writer did not open")
        }
        guard case .opened(let r)? = reader.reply else { throw FixtureError.unexpected("the reader did not open") }
        var clients = try f.registry.clients(of: f.inode, caller: .alice)
        #expect(clients.map(\.identity) == [cat, tee] && clients.map(\.access) == [.read, .write] && clients.allSatisfy { $0.waiting == nil })
        #expect(f.read(r, 10, waiter: RecordingWaiter()) == .queued)
        clients = try f.registry.clients(of: f.inode, caller: .alice)
        #expect(clients.map(\.waiting) == [.read, nil], "the reader waits for data")
        #expect(f.write(w, .pattern(4096)) == .done(.written(4096)))
        #expect(f.write(w, .pattern(5000), waiter: RecordingWaiter()) == .queued)
        #expect(try f.registry.clients(of: f.inode, caller: .alice).map(\.waiting) == [nil, .write], "the writer waits for room")
        f.registry.release(r)
        #expect(try f.registry.clients(of: f.inode, caller: .alice).map(\.identity) == [tee], "a released open is gone")
        _ = try f.registry.changeOwnership(of: f.inode, by: .alice, permissions: 0o600, uid: nil, gid: nil)
        #expect(throws: Errno.permissionDenied) { try f.registry.clients(of: f.inode, caller: .bob) }
        f.registry.release(w)
    }
}
