@testable import PipeCore
import Testing

/// Issue 13, cost 1: broadcast readers' positions, slowest and losses kept at a cost that
/// does not grow with their number, and always equal to what a plain scan of every reader
/// gives.
@Suite struct BroadcastCursorsTests {
    /// Random opens, closes, reads, evictions and losses by all, checked against a model
    /// that recomputes everything by scanning.
    @Test(arguments: 0..<20) func agreesWithAScanOfEveryReader(seed: UInt64) {
        var random = SplitMix(seed: seed)
        var cursors = BroadcastCursors()
        var model: [OpenID: (position: UInt64, lost: UInt64)] = [:]
        var base: UInt64 = 0, end: UInt64 = 0, next: UInt64 = 1
        for step in 0..<3000 {
            switch random.next() % 6 {
            case 0:
                let handle = OpenID(handle: PipeHandle(rawValue: next))
                next += 1
                cursors.add(handle, at: end)
                model[handle] = (end, 0)
            case 1:
                if let handle = model.keys.randomElement(using: &random) {
                    let removed = cursors.remove(handle)
                    #expect(removed)
                    model[handle] = nil
                }
            case 2:
                end += random.next() % 5000
            case 3:
                // Eviction: the buffer's start moves; readers behind lose up to it.
                base = min(end, base + random.next() % 3000)
                for (handle, entry) in model where entry.position < base { model[handle] = (base, entry.lost + base - entry.position) }
            case 4:
                let lost = Int(random.next() % 100)
                cursors.loseForEveryReader(lost)
                for (handle, entry) in model { model[handle] = (entry.position, entry.lost + UInt64(lost)) }
            default:
                if let handle = model.keys.randomElement(using: &random), let entry = model[handle] {
                    let count = Int(random.next() % (end - entry.position + 1))
                    cursors.advance(handle, by: count, base: base)
                    model[handle] = (entry.position + UInt64(count), entry.lost)
                }
            }
            for (handle, entry) in model {
                #expect(cursors.position(of: handle, base: base) == entry.position, "seed \(seed) step \(step)")
                #expect(cursors.lost(by: handle, base: base) == entry.lost, "seed \(seed) step \(step)")
            }
            // The slowest raw position, clamped to the buffer as the pipe does.
            var probe = cursors
            let slowest = probe.slowest().map { max($0, base) }
            #expect(slowest == model.values.map(\.position).min(), "seed \(seed) step \(step)")
            #expect(cursors.isConsistent(end: end))
            if !model.isEmpty && step % 500 == 0 { #expect(Set(cursors.handles) == Set(model.keys)) }
        }
    }
}
