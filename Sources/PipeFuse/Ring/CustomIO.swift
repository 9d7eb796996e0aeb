import CFuse3
import Glibc

/// The daemon's own transport under libfuse (`fuse_session_custom_io`, installed on the
/// mounted descriptor): requests are still read from /dev/fuse as libfuse would; every
/// reply libfuse writes comes here first, and goes to the ring entry that holds its
/// request (`RingRoute`), or is INIT's (`Transport.answerInit`), or to /dev/fuse.
enum CustomIO {
    /// Installs it on a mounted session whose userdata is its `FuseFilesystem`.
    static func install(on session: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.writev = { descriptor, vectors, count, userdata in
            CustomIO.writev(descriptor, vectors, Int(count), userdata)
        }
        io.read = { descriptor, buffer, length, _ in Glibc.read(descriptor, buffer, length) }
        return fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0
    }

    private static func writev(_ descriptor: Int32, _ vectors: UnsafeMutablePointer<iovec>?, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
        guard let vectors, count > 0, vectors[0].iov_len >= MemoryLayout<fuse_out_header>.size, let first = vectors[0].iov_base else {
            return Glibc.writev(descriptor, vectors, Int32(clamping: count))
        }
        let unique = first.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        if let entry = RingRoute.current, entry.claim(unique) {
            let length = entry.write(vectors, count: count, unique: unique)
            entry.queue.answered(entry, from: RingQueue.current)
            return length
        }
        if let userdata {
            let transport = Unmanaged<FuseFilesystem>.fromOpaque(userdata).takeUnretainedValue().transport
            if transport.isInitReply(unique) { return transport.answerInit(descriptor, vectors, count: count) }
        }
        return Glibc.writev(descriptor, vectors, Int32(clamping: count))
    }
}
