/// Where a pipe's machine keeps its buffered bytes: a first-in first-out queue with a
/// capacity, lent out in place. `ByteRing` is the local one; a store that keeps bytes
/// elsewhere (chunks in a database) can be another.
///
/// The machine checks `free` before writing and never discards more than `count`.
package protocol PipeBuffer: ~Copyable, Sendable {
    /// An empty buffer that holds at most `limit` bytes.
    init(limit: Int)
    /// Bytes buffered.
    var count: Int { get }
    /// The capacity in bytes.
    var limit: Int { get }
    /// Bytes of memory it holds now.
    var allocatedBytes: Int { get }
    /// Changes the capacity; false (and no change) when more than `limit` bytes are buffered.
    mutating func setLimit(_ limit: Int) -> Bool
    /// Appends `bytes`, which fit.
    mutating func write(_ bytes: UnsafeRawBufferPointer)
    /// Drops the `n` oldest bytes.
    mutating func discard(_ n: Int)
    /// Up to `n` bytes from `offset` on (0 is the oldest) as at most two pieces, valid until
    /// the buffer next changes.
    func segments(from offset: Int, upTo n: Int) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer)
    /// Frees memory that stayed unused since the previous call; returns the bytes freed.
    @discardableResult mutating func trim() -> Int
    /// For tests: its own invariants hold.
    func verifyInvariants() -> Bool
}

extension PipeBuffer where Self: ~Copyable {
    /// Bytes that can still be written.
    package var free: Int { max(0, limit - count) }
    package var isEmpty: Bool { count == 0 }

    /// The oldest `n` bytes, in place (see `segments(from:upTo:)`).
    package func segments(upTo n: Int) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) { segments(from: 0, upTo: n) }
}

extension ByteRing: PipeBuffer {}
