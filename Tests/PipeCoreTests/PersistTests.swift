import PipeCore
import SystemPackage
import Testing

/// `persist=on` (and `-o persist`): a local mount keeps the pipe and its bytes after the
/// last close, a reader opening it while it holds bytes does not wait for a writer, and
/// `rm` (`PipeRegistry.remove`) is the only way it goes before unmount.
struct PersistTests {
    typealias F = Fixture

    @Test func aPersistedPipeKeepsItsBytesAfterTheLastCloseUntilRemoved() throws {
        let f = try Fixture()
        let writer = try f.open(F.readWrite)
        try f.registry.setAttribute(.persist, to: "on\n", of: f.inode, caller: .alice)
        #expect(try f.registry.attribute(.persist, of: f.inode, caller: .alice) == "on")
        #expect(f.write(writer, Array("kept".utf8)) == .done(.written(4)))
        f.registry.release(writer)
        #expect(f.status?.buffered == 4, "still live, with its bytes")
        #expect(f.registry.livePipes().map(\.name.description) == ["P"], "ls lists it")
        #expect(try f.pipeIsConsistent)

        // A reader does not wait for a writer while bytes are there: it reads them, then end of file.
        let reader = try f.open(F.read)
        #expect(f.read(reader, 100) == .done(.data(Array("kept".utf8))))
        #expect(f.read(reader, 100) == .done(.data([])))
        f.registry.release(reader)
        // Empty now: a reader waits for a writer again, as on any FIFO.
        let (waiter, answer) = f.openWaiting(F.read)
        #expect(answer == .queued)
        f.registry.interrupt(waiter, inode: f.inode)
        #expect(f.status != nil)

        // Only its owner or root removes it; then it is gone.
        #expect(throws: Errno.notPermitted) { try f.registry.remove(try PipeName("P"), caller: .bob) }
        try f.registry.remove(try PipeName("P"), caller: .alice)
        #expect(f.status == nil)
        #expect(f.registry.livePipes().isEmpty)
        #expect(f.registry.isConsistent)
        // Any other name, or the same one again: EPERM, as always.
        #expect(throws: Errno.notPermitted) { try f.registry.remove(try PipeName("P"), caller: .alice) }
        #expect(throws: Errno.notPermitted) { try f.registry.remove(try PipeName("Q"), caller: .root) }
    }

    @Test func removingAPersistedPipeThatIsOpenLetsItGoWithItsLastClose() throws {
        let f = try Fixture()
        let both = try f.open(F.readWrite)
        try f.registry.setAttribute(.persist, to: "on", of: f.inode, caller: .alice)
        try f.registry.remove(try PipeName("P"), caller: .root)
        #expect(f.status?.config.persist == false)
        #expect(f.write(both, [1, 2, 3]) == .done(.written(3)), "its opens go on")
        f.registry.release(both)
        #expect(f.status == nil)
        #expect(f.registry.isConsistent)
    }

    @Test func persistOffAgainFreesAnUnopenedPipe() throws {
        let f = try Fixture()
        let both = try f.open(F.readWrite)
        try f.registry.setAttribute(.persist, to: "on", of: f.inode, caller: .alice)
        try f.registry.setAttribute(.persist, to: "on", of: f.inode, caller: .alice)   // twice: one pin
        f.registry.release(both)
        #expect(f.status != nil)
        #expect(throws: Errno.invalidArgument) { try f.registry.setAttribute(.persist, to: "yes", of: f.inode, caller: .alice) }
        try f.registry.setAttribute(.persist, to: "off", of: f.inode, caller: .alice)
        #expect(f.status == nil)
        #expect(f.registry.isConsistent)
    }

    @Test func theMountsPersistOptionPersistsEveryNewPipe() throws {
        var config = PipeConfig.defaults
        config.persist = true
        let registry = PipeRegistry(configuration: .init(pipe: config))
        let inode = registry.lookup(try PipeName("M"))
        let waiter = RecordingWaiter()
        guard case .done(.opened(let handle)) = registry.open(inode, flags: F.readWrite, caller: .alice, waiter: waiter) else {
            Issue.record("the open did not complete")
            return
        }
        registry.release(handle)
        #expect(try registry.livePipe(inode).status.config.persist)
        #expect(registry.isConsistent)
        try registry.remove(try PipeName("M"), caller: .alice)
        #expect(throws: Errno.noSuchFileOrDirectory) { try registry.livePipe(inode) }
    }
}
