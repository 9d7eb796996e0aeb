/// A first-in first-out queue of bytes in one circular buffer: the pipe's buffer.
///
/// Storage is a power of two so that positions wrap with `& mask`; it is allocated on the
/// first write and grows by doubling up to the smallest power of two that holds `limit`,
/// so an idle pipe costs no buffer memory. Storage larger than `keptWhenEmpty` is freed by
/// `trim()` once the ring has stayed empty and unwritten from one call to the next (the
/// daemon trims every second), so a large buffer costs memory only while it is in use and
/// a pipe that streams through it does not reallocate it on every pass. `limit` is the
/// pipe's capacity in bytes and need not be a power of two. Every copy in or out is at
/// most two `memcpy` calls, and `segments` lends the buffered bytes without copying.
///
/// Invariants (checked by `verifyInvariants()`):
/// - `storage.count` is zero or a power of two, and at most `ByteRing.storageSize(for: limit)`;
/// - `0 <= count <= min(storage.count, limit)`, `0 <= head < max(storage.count, 1)`.
///
/// Callers keep these by construction (they check `free` before writing); the methods
/// assert misuse in debug builds and clamp it in release builds, never trapping.
///
/// A value that owns its storage: it cannot be copied, only moved, so a pipe's machine
/// holds the one ring of its bytes (unchecked Sendable: the storage goes with the value).
package struct ByteRing: ~Copyable, @unchecked Sendable {
    /// The smallest storage allocation, so tiny writes do not cause a chain of regrowths.
    package static let minimumStorage = 4096
    /// The largest storage an idle empty ring keeps (the kernel's default pipe size).
    package static let keptWhenEmpty = 65_536

    private var storage: UnsafeMutableRawBufferPointer
    /// Index of the oldest byte.
    private var head = 0
    /// Bytes buffered.
    package private(set) var count = 0
    /// Written since the last `trim()`.
    private var written = false
    /// The capacity in bytes: `count` never exceeds it after a write.
    package private(set) var limit: Int

    package init(limit: Int) {
        assert(limit > 0, "a ring needs a positive capacity")
        self.limit = max(limit, 1)
        self.storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }

    deinit {
        guard storage.count > 0 else { return }
        FreedMemory.note(storage.count)
        storage.deallocate()
    }

    /// Bytes of memory the ring holds now (what a pipe costs).
    package var allocatedBytes: Int { storage.count }

    /// The storage size that holds `limit` bytes: the next power of two.
    package static func storageSize(for limit: Int) -> Int {
        limit <= 1 ? 1 : 1 << (Int.bitWidth - (limit - 1).leadingZeroBitCount)
    }

    /// Changes the capacity. Fails (returns false) when more than `newLimit` bytes are buffered.
    package mutating func setLimit(_ newLimit: Int) -> Bool {
        assert(newLimit > 0, "a ring needs a positive capacity")
        guard newLimit > 0, count <= newLimit else { return false }
        limit = newLimit
        if storage.count > ByteRing.storageSize(for: newLimit) { reallocate(to: ByteRing.storageSize(for: newLimit)) }
        return true
    }

    /// Appends all of `bytes`; the caller has checked that they fit (`bytes.count <= free`).
    package mutating func write(_ bytes: UnsafeRawBufferPointer) {
        assert(bytes.count <= free, "ByteRing.write past capacity")
        let n = min(bytes.count, free)
        guard n > 0, let source = bytes.baseAddress else { return }
        reserve(count + n)
        guard let base = storage.baseAddress else { return }
        let tail = (head + count) & (storage.count - 1)
        let first = min(n, storage.count - tail)
        // Two bulk copies at most: up to the end of storage, then from its start.
        (base + tail).copyMemory(from: source, byteCount: first)
        if first < n { base.copyMemory(from: source + first, byteCount: n - first) }
        count += n
        written = true
    }

    /// Moves up to `destination.count` of the oldest bytes into `destination`; returns how many.
    @discardableResult
    package mutating func read(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let n = peek(into: destination)
        discard(n)
        return n
    }

    /// Removes and returns up to `maxCount` of the oldest bytes.
    package mutating func read(maxCount: Int) -> [UInt8] {
        let n = min(maxCount, count)
        return [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            initialized = read(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Drops the `n` oldest bytes (overwrite mode, and the tail of `read`).
    package mutating func discard(_ n: Int) {
        assert(n >= 0 && n <= count, "ByteRing.discard out of range")
        let n = min(max(n, 0), count)
        count -= n
        head = count == 0 ? 0 : (head + n) & (storage.count - 1)
    }

    /// Frees storage above `keptWhenEmpty` if the ring is empty and was not written since
    /// the previous call; returns the bytes freed.
    @discardableResult
    package mutating func trim() -> Int {
        defer { written = false }
        guard count == 0, !written, storage.count > ByteRing.keptWhenEmpty else { return 0 }
        let freed = storage.count
        release()
        return freed
    }

    /// The same for the bytes from `offset` on (0 is the oldest): what a broadcast reader
    /// that has read `offset` of the buffered bytes reads next.
    package func segments(from offset: Int, upTo n: Int) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        let offset = min(max(offset, 0), count)
        let n = min(max(n, 0), count - offset)
        guard n > 0, let base = storage.baseAddress else {
            return (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
        }
        let start = (head + offset) & (storage.count - 1)
        let first = min(n, storage.count - start)
        return (UnsafeRawBufferPointer(start: base + start, count: first),
                UnsafeRawBufferPointer(start: base, count: n - first))
    }

    /// Copies up to `destination.count` of the oldest bytes without removing them; returns how many.
    package func peek(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(destination.count, count)
        guard n > 0, let out = destination.baseAddress, let base = storage.baseAddress else { return 0 }
        let first = min(n, storage.count - head)
        out.copyMemory(from: base + head, byteCount: first)
        if first < n { (out + first).copyMemory(from: base, byteCount: n - first) }
        return n
    }

    /// Frees the storage: when the ring is empty, or goes away.
    private mutating func release() {
        guard storage.count > 0 else { return }
        FreedMemory.note(storage.count)
        storage.deallocate()
        storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        head = 0
    }

    /// Grows the storage (doubling) so that `needed` bytes fit.
    private mutating func reserve(_ needed: Int) {
        guard needed > storage.count else { return }
        let ceiling = ByteRing.storageSize(for: limit)
        var size = max(storage.count, min(ByteRing.minimumStorage, ceiling))
        while size < needed { size *= 2 }
        reallocate(to: min(size, ceiling))
    }

    /// Moves the buffered bytes, oldest first, into fresh storage of `size` bytes.
    private mutating func reallocate(to size: Int) {
        assert(size >= count && size & (size - 1) == 0)
        let fresh = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        let n = count
        if n > 0, let from = storage.baseAddress, let to = fresh.baseAddress {
            let first = min(n, storage.count - head)
            to.copyMemory(from: from + head, byteCount: first)
            if first < n { (to + first).copyMemory(from: from, byteCount: n - first) }
        }
        FreedMemory.note(storage.count)
        storage.deallocate()
        storage = fresh
        head = 0
    }

    /// Checks the invariants above; for tests.
    package func verifyInvariants() -> Bool {
        let size = storage.count
        let powerOfTwo = size == 0 || size & (size - 1) == 0
        return powerOfTwo && size <= ByteRing.storageSize(for: limit)
            && count >= 0 && count <= size && count <= limit
            && head >= 0 && head < max(size, 1)
    }
}
