import CFuse3
import CRing
import Glibc
import Synchronization

/// One entry of a queue's ring: the two buffers the kernel copies a request into and a
/// reply out of (a 288-byte header, a payload of the kernel's largest), and the request it
/// holds from its delivery until its reply is written.
///
/// Layout of its one mapping: the header at the start of the first page, the payload from
/// the second page on; the end of the first page is where a request's header and first
/// argument are copied (at most 168 bytes), just before the payload, so that libfuse reads
/// the request as one contiguous buffer, as from /dev/fuse, and a write's bytes are not copied.
///
/// Unchecked Sendable: the queue's thread delivers and commits; a reply made on another
/// thread writes the buffers only after claiming `holding`, and hands the entry back
/// through the queue's answered list (an atomic push), which orders its writes before the commit.
final class RingEntry: @unchecked Sendable {
    /// The headers' page; the payload follows it.
    private static let headerPage = 4096
    /// fuse_in_header and fuse_out_header.
    private static let inHeaderSize = MemoryLayout<fuse_in_header>.size
    private static let outHeaderSize = MemoryLayout<fuse_out_header>.size

    let index: Int
    unowned let queue: RingQueue
    private let memory: UnsafeMutableRawPointer
    private let mappedSize: Int
    private let header: UnsafeMutablePointer<npfs_uring_req_header>
    /// The header's fuse_in_header in, fuse_out_header out; and the first argument in.
    private let inOut: UnsafeMutableRawPointer
    private let opIn: UnsafeRawPointer
    private let payload: UnsafeMutableRawPointer
    let payloadSize: Int
    /// The header and the payload, as REGISTER takes them.
    let buffers: UnsafeMutablePointer<iovec>
    /// The unique of the request this entry holds until its reply is written; 0 otherwise.
    let holding = Atomic<UInt64>(0)
    /// The unique the reply answers, for the commit (set with the reply, before the push).
    var answered: UInt64 = 0
    /// The next entry in the queue's answered list (set before the push).
    var nextAnswered = -1

    /// Bytes of memory an entry of this payload size maps.
    static func mappedBytes(payload: Int) -> Int { headerPage + payload }

    init?(index: Int, queue: RingQueue, payloadSize: Int) {
        let size = RingEntry.mappedBytes(payload: payloadSize)
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { return nil }
        self.index = index
        self.queue = queue
        memory = mapped
        mappedSize = size
        header = mapped.bindMemory(to: npfs_uring_req_header.self, capacity: 1)
        inOut = mapped + MemoryLayout<npfs_uring_req_header>.offset(of: \.in_out)!
        opIn = UnsafeRawPointer(mapped + MemoryLayout<npfs_uring_req_header>.offset(of: \.op_in)!)
        payload = mapped + RingEntry.headerPage
        self.payloadSize = payloadSize
        buffers = .allocate(capacity: 2)
        buffers[0] = iovec(iov_base: mapped, iov_len: MemoryLayout<npfs_uring_req_header>.size)
        buffers[1] = iovec(iov_base: payload, iov_len: payloadSize)
    }

    deinit {
        munmap(memory, mappedSize)
        buffers.deallocate()
    }

    /// The request the kernel delivered, as one buffer (header, first argument, payload),
    /// or nil if its sizes do not add up. Marks the entry as holding it.
    func delivered() -> fuse_buf? {
        let request = inOut.loadUnaligned(as: fuse_in_header.self)
        let payloadBytes = Int(header.pointee.ring_ent_in_out.payload_sz)
        let length = Int(request.len)
        let first = length - RingEntry.inHeaderSize - payloadBytes
        guard request.unique != 0, payloadBytes <= payloadSize, (0...128).contains(first) else { return nil }
        let start = payload - RingEntry.inHeaderSize - first
        start.copyMemory(from: inOut, byteCount: RingEntry.inHeaderSize)
        (start + RingEntry.inHeaderSize).copyMemory(from: opIn, byteCount: first)
        holding.store(request.unique, ordering: .releasing)
        var buffer = fuse_buf()
        buffer.size = length
        buffer.mem = start
        return buffer
    }

    /// Answers the request delivered last with `errno` (one whose sizes did not add up).
    func fail(_ errno: Int32) {
        writeError(errno, unique: inOut.loadUnaligned(as: fuse_in_header.self).unique)
    }

    /// An error reply (a header alone) to `unique`.
    private func writeError(_ errno: Int32, unique: UInt64) {
        var failed = fuse_out_header(len: UInt32(RingEntry.outHeaderSize), error: -errno, unique: unique)
        inOut.copyMemory(from: &failed, byteCount: RingEntry.outHeaderSize)
        header.pointee.ring_ent_in_out.payload_sz = 0
        answered = unique
    }

    /// Takes the reply to `unique` if this entry holds that request: once, whoever calls.
    func claim(_ unique: UInt64) -> Bool {
        unique != 0 && holding.compareExchange(expected: unique, desired: 0, ordering: .acquiringAndReleasing).exchanged
    }

    /// Writes a claimed reply (libfuse's iovecs: the out header, then its arguments) into
    /// the buffers; one too large for the payload becomes EIO. Returns the reply's length.
    func write(_ vectors: UnsafePointer<iovec>, count: Int, unique: UInt64) -> Int {
        var total = 0
        for i in 0..<count { total += vectors[i].iov_len }
        guard total - RingEntry.outHeaderSize <= payloadSize else {
            writeError(EIO, unique: unique)
            return total
        }
        var written = 0
        for i in 0..<count {
            guard let base = vectors[i].iov_base else { continue }
            var from = UnsafeRawPointer(base), left = vectors[i].iov_len
            if written < RingEntry.outHeaderSize {
                let part = min(left, RingEntry.outHeaderSize - written)
                (inOut + written).copyMemory(from: from, byteCount: part)
                written += part
                from += part
                left -= part
            }
            if left > 0 {
                (payload + (written - RingEntry.outHeaderSize)).copyMemory(from: from, byteCount: left)
                written += left
            }
        }
        header.pointee.ring_ent_in_out.payload_sz = UInt32(max(written - RingEntry.outHeaderSize, 0))
        answered = unique
        return total
    }
}
