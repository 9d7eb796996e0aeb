import Glibc
import Synchronization

/// Which ring entry a reply made on this thread belongs to: the request being handled by
/// a queue's thread, or the one a deferred reply answers (`FuseRequest` sets it around its
/// `fuse_reply_*` call). Read by the custom writev that libfuse calls for every reply.
enum RingRoute {
    /// An entry, unretained: entries are never freed while their session lives (`RingSet`
    /// keeps its queues, a queue its entries).
    struct Entry: @unchecked Sendable {
        fileprivate let pointer: UnsafeMutableRawPointer
        init(_ entry: RingEntry) { pointer = Unmanaged.passUnretained(entry).toOpaque() }
        var entry: RingEntry { Unmanaged<RingEntry>.fromOpaque(pointer).takeUnretainedValue() }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Set once a session of this process serves over io_uring: until then no request is
    /// looked up (a request over /dev/fuse costs no thread-local read).
    static let inUse = Atomic<Bool>(false)

    /// The entry replies on this thread go to, if its request is the one answered.
    static var current: RingEntry? { currentEntry?.entry }

    static var currentEntry: Entry? {
        guard inUse.load(ordering: .relaxed) else { return nil }
        return pthread_getspecific(key).map { Entry(pointer: $0) }
    }

    /// Runs `body` with replies routed to `entry`, then restores the previous route.
    static func with<Result>(_ entry: Entry, _ body: () -> Result) -> Result {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, entry.pointer)
        defer { pthread_setspecific(key, previous) }
        return body()
    }
}

private extension RingRoute.Entry {
    init(pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}
