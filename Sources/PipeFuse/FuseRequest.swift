import CFuse3
import Glibc
import PipeCore
import SystemPackage

/// A FUSE request that must be answered exactly once: each reply consumes it, and one
/// dropped unanswered stops a debug build (and is answered EIO in a release build).
/// Every `fuse_reply_*` call of npfs is here.
///
/// Unchecked Sendable: libfuse lets any thread answer a request, and being non-copyable
/// it is answered by whoever holds it, once.
struct FuseRequest: ~Copyable, @unchecked Sendable {
    /// Never leaves this file: every reply goes through a method that consumes the request.
    private let raw: fuse_req_t
    /// The ring entry the request came in on, if it came over io_uring: its reply, made on
    /// whichever thread, is written there (see `RingRoute`). Unretained (a request must be
    /// trivially destroyed to be consumed by its reply): entries live as long as the process.
    private let entry: RingRoute.Entry?

    init(_ raw: fuse_req_t) {
        self.raw = raw
        entry = RingRoute.currentEntry
    }

    /// Makes a `fuse_reply_*` call with the reply routed to the request's ring entry.
    @discardableResult @inline(__always)
    private func answer<Result>(_ reply: () -> Result) -> Result {
        guard let entry else { return reply() }
        return RingRoute.with(entry, reply)
    }

    /// A request dropped without a reply is a bug: debug builds stop, release builds
    /// answer EIO so that the process waiting on it is never left hanging.
    deinit {
        assertionFailure("a FUSE request was dropped without a reply")
        answer { fuse_reply_err(raw, EIO) }
    }

    /// The process that sent the request, as a plain value: its supplementary groups are
    /// read from /proc by its thread id, and only where a decision needs them.
    var caller: Caller {
        guard let context = fuse_req_ctx(raw)?.pointee else { return Caller(uid: .max, gid: .max) }
        return Caller(uid: context.uid, gid: context.gid, pid: context.pid, groupReader: SupplementaryGroups.of)
    }

    // MARK: Replies

    consuming func fail(_ errno: Errno) {
        answer { fuse_reply_err(raw, errno.rawValue) }
        discard self
    }

    consuming func succeed() {
        answer { fuse_reply_err(raw, 0) }
        discard self
    }

    /// For `forget`, which takes no reply.
    consuming func noReply() {
        answer { fuse_reply_none(raw) }
        discard self
    }

    consuming func entry(_ inode: InodeNumber, attributes: stat, entryTimeout: Double) {
        var entry = fuse_entry_param()
        entry.ino = inode.rawValue
        entry.generation = 1
        entry.attr = attributes
        entry.attr_timeout = 0   // size, times, owner and mode change with every write and chmod: never cache them
        entry.entry_timeout = entryTimeout
        answer { fuse_reply_entry(raw, &entry) }
        discard self
    }

    /// Attributes the kernel may keep for `timeout` seconds (a pipe's: none, they change
    /// with every write; see `FuseFilesystem.attributeTimeout`).
    consuming func attributes(_ attributes: stat, timeout: Double) {
        var attributes = attributes
        answer { fuse_reply_attr(raw, &attributes, timeout) }
        discard self
    }

    /// Answers an open as a direct-I/O stream file (FOPEN_STREAM, which fuse_reply_open
    /// cannot send in libfuse 3.14). Returns false if the kernel refused the reply: the
    /// open was abandoned and no release will come for it.
    consuming func opened(_ handle: UInt64) -> Bool {
        var out = fuse_open_out(fh: handle, open_flags: npfs_fopen_stream_flags(), padding: 0)
        let result = withUnsafeMutableBytes(of: &out) { bytes -> Int32 in
            var vector = iovec(iov_base: bytes.baseAddress, iov_len: bytes.count)
            return answer { fuse_reply_iov(raw, &vector, 1) }
        }
        discard self
        return result == 0
    }

    /// Answers `opendir` with a directory handle.
    consuming func openedDirectory(_ handle: UInt64) {
        var info = fuse_file_info()
        info.fh = handle
        answer { fuse_reply_open(raw, &info) }
        discard self
    }

    consuming func data(_ bytes: [UInt8]) {
        answer { bytes.withUnsafeBytes { _ = fuse_reply_buf(raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) } }
        discard self
    }

    /// Answers a read with bytes lent by the pipe, in one vectored reply, uncopied.
    consuming func data(_ data: ReadData) {
        answer { FuseRequest.send(raw, data) }
        discard self
    }

    /// A read that may be answered at once, from under the pipe's lock: `attempt` gets a
    /// sink that sends bytes lent to it as this request's reply, uncopied. Unless it was
    /// answered so (`.answered`), `otherwise` gets the request back with the read's result.
    consuming func read(_ attempt: (ReadSink) -> ReadResult, otherwise: (consuming FuseRequest, ReadResult) -> Void) {
        // The sink replies on this thread, inside `attempt`: routed as this request's.
        let result = answer {
            attempt(ReadSink(context: UnsafeMutableRawPointer(raw)) { raw, data in
                if let raw { FuseRequest.send(fuse_req_t(raw), ReadSink.data(data)) }
            })
        }
        if case .answered = result {
            discard self
            return
        }
        otherwise(self, result)
    }

    private static func send(_ raw: fuse_req_t, _ data: ReadData) {
        let count = data.pieces.count
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(count, 1)) { vectors in
            for (i, piece) in data.pieces.enumerated() {
                vectors[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: piece.baseAddress), iov_len: piece.count)
            }
            _ = fuse_reply_iov(raw, vectors.baseAddress, Int32(count))
        }
    }

    /// Registers the interrupt callback for a waiting request under `key`. libfuse may call
    /// it at once, inside this call, holding the request's lock: the callback must not reply.
    func onInterrupt(key: UInt64) {
        fuse_req_interrupt_func(raw, { req, data in
            guard let req else { return }
            FuseFilesystem.from(req)?.waiters.interrupted(UInt64(UInt(bitPattern: data)))
        }, UnsafeMutableRawPointer(bitPattern: UInt(key)))
    }

    consuming func written(_ count: Int) {
        answer { fuse_reply_write(raw, count) }
        discard self
    }

    consuming func poll(_ events: PollEvents) {
        answer { fuse_reply_poll(raw, events.rawValue) }
        discard self
    }

    /// `getxattr`/`listxattr` with size 0 ask only for the length.
    consuming func xattr(_ value: [UInt8], bufferSize: Int) {
        if bufferSize == 0 {
            answer { fuse_reply_xattr(raw, value.count) }
        } else if value.count > bufferSize {
            answer { fuse_reply_err(raw, ERANGE) }
        } else {
            answer { value.withUnsafeBytes { _ = fuse_reply_buf(raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) } }
        }
        discard self
    }

    /// Answers with directory entries `(inode, name)` from index `offset` on, as many as fit.
    consuming func directory(_ entries: ArraySlice<(inode: UInt64, name: [UInt8], isDirectory: Bool)>, bufferSize: Int, firstOffset: Int) {
        var buffer = [CChar](repeating: 0, count: bufferSize)
        var used = 0
        var offset = firstOffset
        for entry in entries where bufferSize > used {
            var attributes = stat()
            attributes.st_ino = ino_t(entry.inode)
            attributes.st_mode = entry.isDirectory ? npfs_s_ifdir() : npfs_s_ifreg()
            offset += 1
            let needed = (entry.name.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { name in
                buffer.withUnsafeMutableBufferPointer { out in
                    fuse_add_direntry(raw, out.baseAddress.map { $0 + used }, bufferSize - used, name.baseAddress,
                                      &attributes, off_t(offset))
                }
            }
            if used + needed > bufferSize { break }
            used += needed
        }
        answer { buffer.withUnsafeBufferPointer { _ = fuse_reply_buf(raw, $0.baseAddress, used) } }
        discard self
    }

    /// Answers a read now: end of file (no bytes), bytes copied, or an error.
    consuming func send(_ reply: ReadReply) {
        switch reply {
        case .data(let bytes): data(bytes)
        case .failed(let errno): fail(errno)
        }
    }

    /// Answers a write now: the count taken, or an error.
    consuming func send(_ reply: WriteReply) {
        switch reply {
        case .written(let count): written(count)
        case .failed(let errno): fail(errno)
        }
    }

    /// Sends a core reply to a read or write (an open's goes through `opened`, whose
    /// failure the caller must handle).
    consuming func send(_ reply: PipeReply) {
        switch reply {
        case .data(let bytes): data(bytes)
        case .written(let count): written(count)
        case .failed(let errno): fail(errno)
        case .opened:
            assertionFailure("an open's reply sent as a read's or write's")
            fail(.ioError)
        }
    }
}
