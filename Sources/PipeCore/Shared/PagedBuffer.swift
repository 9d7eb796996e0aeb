import Synchronization

/// A pipe's bytes kept outside this process as a stream cut into fixed pages (the cluster
/// keeps each page in a PostgreSQL row): the machine's buffer, seen through `PipeBuffer`.
///
/// Only positions travel with the machine's state (`head`, the stream position of the
/// oldest byte, and `tail`, one past the newest), so the state stays small however many
/// bytes are buffered. A step appends bytes (`appended`, written to their pages after it)
/// and discards from the head (pages wholly below it are dropped after it); bytes a read
/// is lent come from the pages, fetched from `PageSource` when first needed, or from what
/// the step appended.
package struct PagedBuffer: ~Copyable, @unchecked Sendable {
    /// Bytes per page: a 4 KiB write touches at most two, and a page's row stays small.
    package static let pageSize = 8192

    package private(set) var limit: Int
    package private(set) var head: UInt64
    package private(set) var tail: UInt64
    /// `tail` when the step began: `appended` starts there.
    package private(set) var appendStart: UInt64
    /// Bytes appended during this step.
    package private(set) var appended: [UInt8] = []
    /// Pages read during this step, and where lent bytes are assembled.
    private let pages: PageCache

    package init(limit: Int) {
        self.limit = max(limit, 1)
        (head, tail, appendStart) = (0, 0, 0)
        pages = PageCache(source: nil)
    }

    /// A buffer at these positions, reading its pages from `source`.
    package init(limit: Int, head: UInt64, tail: UInt64, source: (any PageSource)?) {
        self.limit = max(limit, 1)
        (self.head, self.tail, appendStart) = (head, tail, tail)
        pages = PageCache(source: source)
    }

    package static func page(of position: UInt64) -> Int64 { Int64(position / UInt64(pageSize)) }

    /// Pages of the stream that hold no buffered byte any more (below the head's page).
    package var firstLivePage: Int64 { PagedBuffer.page(of: head) }

    /// Pages a step will read, fetched ahead with the row.
    package func preload(_ pages: [Int64: [UInt8]]) { self.pages.preload(pages) }
}

extension PagedBuffer: StoredBuffer {
    package func encode(into writer: inout StateWriter) {
        writer.put(limit)
        writer.put(head)
        writer.put(tail)
    }

    package init(decoding reader: inout StateReader, source: (any PageSource)?) throws(StateDecodingError) {
        let limit = try reader.count(atMost: PipeConfig.maximumCapacity)
        let (head, tail) = (try reader.uint64(), try reader.uint64())
        guard limit > 0, head <= tail, tail - head <= UInt64(limit) else { throw StateDecodingError("bad paged buffer") }
        self.init(limit: limit, head: head, tail: tail, source: source)
    }
}

extension PagedBuffer: PipeBuffer {
    package var count: Int { Int(tail - head) }
    package var allocatedBytes: Int { 0 }

    package mutating func setLimit(_ limit: Int) -> Bool {
        guard limit > 0, count <= limit else { return false }
        self.limit = limit
        return true
    }

    package mutating func write(_ bytes: UnsafeRawBufferPointer) {
        appended.append(contentsOf: bytes)
        tail += UInt64(bytes.count)
    }

    package mutating func discard(_ n: Int) {
        head += UInt64(max(0, min(n, count)))
    }

    package func segments(from offset: Int, upTo n: Int) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        let start = head + UInt64(max(0, min(offset, count)))
        let end = min(start + UInt64(max(0, n)), tail)
        guard end > start else { return (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0)) }
        // Bytes below appendStart are in the pages; from it on, in `appended`.
        let stored = start < appendStart ? pages.bytes(from: start, to: min(end, appendStart)) : []
        let fresh: ArraySlice<UInt8> = end > appendStart
            ? appended[Int(max(start, appendStart) - appendStart)..<Int(end - appendStart)] : []
        return (pages.lend(stored + fresh), UnsafeRawBufferPointer(start: nil, count: 0))
    }

    package mutating func trim() -> Int { 0 }

    package func verifyInvariants() -> Bool { head <= tail && appendStart <= tail && count <= limit }
}

/// Where a paged buffer's bytes are read from: its pages, by number.
package protocol PageSource: AnyObject, Sendable {
    /// The pages `first...last` that exist, each with its bytes.
    func pages(_ first: Int64, _ last: Int64) -> [Int64: [UInt8]]
}

/// The pages a step has read, and the memory lent bytes are assembled in (valid until the
/// next `lend`, as `PipeBuffer.segments` promises: until the buffer next changes).
final class PageCache: @unchecked Sendable {
    private let source: (any PageSource)?
    private var loaded: [Int64: [UInt8]] = [:]
    /// Memory lent during the step, freed with it.
    private var lent: [UnsafeMutableRawBufferPointer] = []

    init(source: (any PageSource)?) { self.source = source }

    deinit { lent.forEach { $0.deallocate() } }

    /// Pages a step will read (fetched ahead, with the row).
    func preload(_ pages: [Int64: [UInt8]]) { loaded.merge(pages) { $1 } }

    /// The stored bytes of stream positions `start..<end` (missing pages read as zeros,
    /// which a consistent store never has).
    func bytes(from start: UInt64, to end: UInt64) -> [UInt8] {
        let size = UInt64(PagedBuffer.pageSize)
        let (first, last) = (Int64(start / size), Int64((end - 1) / size))
        let missing = (first...last).filter { loaded[$0] == nil }
        if let low = missing.first, let high = missing.last, let source {
            loaded.merge(source.pages(low, high)) { $1 }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(end - start))
        for page in first...last {
            let pageStart = UInt64(page) * size
            let from = Int(max(start, pageStart) - pageStart), to = Int(min(end, pageStart + size) - pageStart)
            let data = loaded[page] ?? []
            if from < data.count { bytes.append(contentsOf: data[from..<min(to, data.count)]) }
            if to > max(from, data.count) { bytes.append(contentsOf: repeatElement(0, count: to - max(from, data.count))) }
        }
        return bytes
    }

    func lend(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        lent.append(memory)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { memory.baseAddress?.copyMemory(from: base, byteCount: $0.count) } }
        return UnsafeRawBufferPointer(rebasing: memory[..<bytes.count])
    }
}
