import Glibc

/// The queues of a session served over io_uring: one per possible CPU (the kernel hangs
/// every request until each has an entry), each with its own pinned thread.
final class RingSet: Sendable {
    let queues: [RingQueue]

    init(session: OpaquePointer, fuseDescriptor: Int32, depth: Int, spin: Int, payloadSize: Int) {
        queues = (0..<RingSet.possibleCPUs()).map {
            RingQueue(qid: $0, session: session, fuseDescriptor: fuseDescriptor, depth: depth, spin: spin, payloadSize: payloadSize)
        }
    }

    /// Sets every queue up (its thread, its ring, its first entries): 0, or the first
    /// negative errno (then nothing is registered and `stop` ends them).
    func prepare() -> Int32 {
        for queue in queues {
            let failure = queue.prepare()
            if failure != 0 { return failure }
        }
        let descriptors = queues.map(\.ringDescriptor)
        for queue in queues { queue.peers = descriptors }
        return 0
    }

    /// Registers the entries: the kernel has taken the INIT reply.
    func start() {
        RingRoute.inUse.store(true, ordering: .relaxed)
        queues.forEach { $0.start() }
    }

    func stop() { queues.forEach { $0.stop() } }

    /// Puts each queue's thread back on its CPU (see `RingQueue.repin`).
    func repin() { queues.forEach { $0.repin() } }

    /// Entries of all queues.
    var entryCount: Int { queues.reduce(0) { $0 + $1.entryCount.load(ordering: .relaxed) } }

    /// The memory the entries map (untouched pages of it cost nothing).
    var bufferBytes: Int { queues.reduce(0) { $0 + $1.entryCount.load(ordering: .relaxed) * RingEntry.mappedBytes(payload: $1.payloadSize) } }

    /// CPUs the kernel may ever run (`/sys/devices/system/cpu/possible`, as "0-3,5"): the
    /// queues the kernel expects.
    static func possibleCPUs() -> Int {
        guard let line = ProcFile.contents(of: "/sys/devices/system/cpu/possible") else {
            return max(Int(sysconf(Int32(_SC_NPROCESSORS_CONF))), 1)
        }
        var highest = 0
        for range in line.split(separator: ",") {
            let bounds = range.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "-")
            if let last = bounds.last.flatMap({ Int($0) }) { highest = max(highest, last) }
        }
        return min(highest + 1, 1024)
    }
}
