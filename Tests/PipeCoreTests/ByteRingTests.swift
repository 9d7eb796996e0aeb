import PipeCore
import Testing

@Suite struct ByteRingTests {
    @Test func wrapsAroundWithTwoCopies() {
        var ring = ByteRing(limit: 8)
        let first: [UInt8] = [1, 2, 3, 4, 5, 6]
        first.withUnsafeBytes { ring.write($0) }
        #expect(Bool(ring.read(maxCount: 4) == [1, 2, 3, 4]))
        // 6 more bytes: 2 at the end of storage, 4 wrapped to its start.
        let second: [UInt8] = [7, 8, 9, 10, 11, 12]
        second.withUnsafeBytes { ring.write($0) }
        #expect(Bool(ring.count == 8))
        #expect(Bool(ring.free == 0))
        #expect(Bool(ring.verifyInvariants()))
        #expect(Bool(ring.read(maxCount: 100) == [5, 6, 7, 8, 9, 10, 11, 12]))
        #expect(Bool(ring.isEmpty))
    }

    @Test func storageIsLazyAndBoundedByThePowerOfTwoAboveTheLimit() {
        var ring = ByteRing(limit: 100_000)
        #expect(Bool(ring.allocatedBytes == 0))
        [UInt8](repeating: 7, count: 10).withUnsafeBytes { ring.write($0) }
        #expect(Bool(ring.allocatedBytes == ByteRing.minimumStorage))
        [UInt8](repeating: 7, count: 99_990).withUnsafeBytes { ring.write($0) }
        #expect(Bool(ring.count == 100_000))
        #expect(Bool(ring.free == 0))
        #expect(Bool(ring.allocatedBytes == 131_072))
        #expect(Bool(ring.verifyInvariants()))
    }

    /// Issue 7: a buffer that streams is not freed and reallocated on every pass, and one
    /// left idle is still freed (by the daemon's once-a-second trim).
    @Test func largeStorageIsFreedOnlyAfterAnIdleTrimPeriod() {
        var ring = ByteRing(limit: 1 << 20)
        [UInt8](repeating: 1, count: 300_000).withUnsafeBytes { ring.write($0) }
        #expect(Bool(ring.read(maxCount: 1 << 20).count == 300_000))
        #expect(Bool(ring.allocatedBytes == 524_288), "read empty: kept for the next pass")
        #expect(Bool(ring.trim() == 0), "written since the last trim")
        #expect(Bool(ring.trim() == 524_288))
        #expect(Bool(ring.allocatedBytes == 0))
        [UInt8](repeating: 1, count: 300_000).withUnsafeBytes { ring.write($0) }
        _ = ring.trim()
        #expect(Bool(ring.trim() == 0), "holds bytes")
        var small = ByteRing(limit: 1 << 20)
        [UInt8](repeating: 1, count: 100).withUnsafeBytes { small.write($0) }
        _ = small.read(maxCount: 100)
        _ = small.trim()
        #expect(Bool(small.trim() == 0), "storage up to keptWhenEmpty stays")
    }

    @Test func segmentsLendTheOldestBytesInOrderAcrossTheWrap() {
        var ring = ByteRing(limit: 8)
        [UInt8]([1, 2, 3, 4, 5, 6]).withUnsafeBytes { ring.write($0) }
        _ = ring.read(maxCount: 5)
        [UInt8]([7, 8, 9, 10, 11]).withUnsafeBytes { ring.write($0) }
        let (first, second) = ring.segments(upTo: 100)
        #expect(Array(first) + Array(second) == [6, 7, 8, 9, 10, 11])
        #expect(second.count > 0, "the bytes wrap")
        let (head, none) = ring.segments(upTo: 2)
        #expect(Array(head) == [6, 7] && none.isEmpty)
        #expect(Bool(ring.count == 6), "lending consumes nothing")
    }

    @Test func growthKeepsOrderAcrossTheWrap() {
        var ring = ByteRing(limit: 65_536)
        var model: [UInt8] = []
        var next: UInt8 = 0
        func put(_ n: Int) {
            let bytes = (0..<n).map { _ in next &+= 1; return next }
            bytes.withUnsafeBytes { ring.write($0) }
            model += bytes
        }
        put(3000)
        #expect(Bool(ring.read(maxCount: 2500) == Array(model.prefix(2500))))
        model.removeFirst(2500)
        put(4000)   // wraps in 4 KiB storage, then must grow
        put(20_000)
        #expect(Bool(ring.verifyInvariants()))
        #expect(Bool(ring.read(maxCount: 1 << 20) == model))
    }

    @Test func shrinkingBelowTheBufferedCountFails() {
        var ring = ByteRing(limit: 65_536)
        [UInt8](repeating: 1, count: 10_000).withUnsafeBytes { ring.write($0) }
        #expect(Bool(!ring.setLimit(8192)))
        #expect(Bool(ring.setLimit(16_384)))
        #expect(Bool(ring.limit == 16_384))
        #expect(Bool(ring.allocatedBytes <= 16_384))
        #expect(Bool(ring.read(maxCount: 20_000).count == 10_000))
    }

    /// Random writes, reads and discards against an array, over many seeds.
    @Test(arguments: 1...40)
    func matchesAnArrayModel(seed: UInt64) {
        var random = SplitMix(seed: seed)
        let limit = [4096, 5000, 65_536, 100_000][Int(seed % 4)]
        var ring = ByteRing(limit: limit)
        var model: [UInt8] = []
        for _ in 0..<400 {
            switch random.next() % 3 {
            case 0:
                let n = Int(random.next() % UInt64(ring.free + 1))
                let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                bytes.withUnsafeBytes { ring.write($0) }
                model += bytes
            case 1:
                let n = Int(random.next() % UInt64(limit + 1))
                let got = ring.read(maxCount: n)
                #expect(got == Array(model.prefix(n)))
                model.removeFirst(got.count)
            default:
                let n = Int(random.next() % UInt64(model.count + 1))
                ring.discard(n)
                model.removeFirst(n)
            }
            #expect(Bool(ring.count == model.count))
            #expect(Bool(ring.free == limit - model.count))
            #expect(Bool(ring.verifyInvariants()))
        }
        #expect(Bool(ring.read(maxCount: limit) == model))
    }
}

/// A small deterministic generator, so a failing seed can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
