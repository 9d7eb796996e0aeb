import PipeCore
import SystemPackage
import Testing

/// Issue 8, item 3: a look at what the next read would return, without taking it.
@Suite struct PeekTests {
    @Test func peekShowsTheOldestBytesAndTakesNothing() throws {
        let f = try Fixture(capacity: 4096)
        let both = try f.open(Fixture.readWrite)
        #expect(try f.registry.peek(f.inode, max: 100, caller: .alice) == [], "empty")
        _ = f.write(both, Array("hello world".utf8))
        #expect(try f.registry.peek(f.inode, max: 5, caller: .alice) == Array("hello".utf8))
        #expect(try f.registry.peek(f.inode, max: 1 << 20, caller: .alice) == Array("hello world".utf8), "capped at 4096, here all")
        #expect(f.read(both, 6) == .done(.data(Array("hello ".utf8))))
        #expect(try f.registry.peek(f.inode, max: 100, caller: .alice) == Array("world".utf8))
        // Across the end of the buffer.
        _ = f.write(both, .pattern(4000))
        #expect(f.read(both, 5) == .done(.data(Array("world".utf8))))
        _ = f.write(both, .pattern(90, seed: 9))
        #expect(try f.registry.peek(f.inode, max: 4096, caller: .alice) == .pattern(4000) + .pattern(90, seed: 9))
        #expect(f.status?.buffered == 4090 && f.status?.bytesRead == 11)
    }

    @Test func aMessagePipeShowsTheOldestMessageOnly() throws {
        let f = try Fixture(framing: .message)
        let both = try f.open(Fixture.readWrite)
        _ = f.write(both, Array("first".utf8))
        _ = f.write(both, Array("second".utf8))
        #expect(try f.registry.peek(f.inode, max: 4096, caller: .alice) == Array("first".utf8))
        #expect(f.read(both, 2) == .done(.data(Array("fi".utf8))))
        #expect(try f.registry.peek(f.inode, max: 4096, caller: .alice) == Array("rst".utf8), "the rest of the oldest message")
    }

    @Test func peekNeedsALivePipeAndReadPermission() throws {
        let f = try Fixture()
        #expect(throws: Errno.noSuchFileOrDirectory) { try f.registry.peek(f.inode, max: 10, caller: .alice) }
        let both = try f.open(Fixture.readWrite)
        _ = f.write(both, [1, 2, 3])
        _ = try f.registry.changeOwnership(of: f.inode, by: .alice, permissions: 0o600, uid: nil, gid: nil)
        #expect(throws: Errno.permissionDenied) { try f.registry.peek(f.inode, max: 10, caller: .bob) }
        #expect(try f.registry.peek(f.inode, max: 10, caller: .root) == [1, 2, 3])
    }
}
