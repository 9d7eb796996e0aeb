import CFuse3
import Glibc
import Synchronization

/// How requests travel between the kernel and this daemon: over /dev/fuse (`ServingLoop`),
/// or, when the kernel offers it at INIT (Linux 6.14 and later, built with
/// CONFIG_FUSE_IO_URING, while the fuse module's `enable_uring` is Y: `./mount.sh
/// --io-uring`), over io_uring: a queue per possible CPU (`RingSet`). INIT, FORGET,
/// INTERRUPT and notifications still go over /dev/fuse.
///
/// `-o io_uring=auto` (the default) serves over io_uring when it is offered, `off` never,
/// `on` makes its absence an error. The decision is made where libfuse writes its INIT
/// reply (`CustomIO`): the rings are set up first, and only then is FUSE_OVER_IO_URING
/// added to the reply, so that a ring that cannot be made leaves the mount on /dev/fuse
/// instead of with requests the kernel holds for a ring that never comes.
package final class Transport: Sendable {
    package enum Mode: String, Sendable, CaseIterable {
        case auto, on, off
    }

    /// FUSE_OVER_IO_URING, bit 41 of INIT's flags: bit 9 of `flags2`, there only with FUSE_INIT_EXT.
    static let overIoUring: UInt32 = 1 << (41 - 32)
    /// Entries each queue starts with (`io_uring_depth`).
    package static let defaultDepth = 8
    package static let depths = 1...1024
    /// How long a queue's thread looks for work before it sleeps while a request of its CPU
    /// waits for an answer (`io_uring_spin`, microseconds).
    package static let defaultSpin = 20
    package static let spins = 0...1000

    private enum Offer: UInt8 {
        case unknown, notOffered, offered
    }

    package let mode: Mode
    package let depth: Int
    package let spin: Int
    /// An `Offer`, set once the INIT request was seen.
    private let offer = Atomic<UInt8>(Offer.unknown.rawValue)
    /// The INIT request's unique, to know its reply; 0 before.
    private let initUnique = Atomic<UInt64>(0)
    /// With `-d`: the transport is said on standard error, once.
    let announces = Atomic<Bool>(false)

    /// libfuse lets any thread use a session.
    private struct Session: @unchecked Sendable { let pointer: OpaquePointer }

    private struct State {
        var session: Session?
        var rings: RingSet?
        /// Why io_uring is not used although offered (a failed set-up), if so.
        var refusal: String?
        /// npfs's writev sees the replies (`attach`), the INIT reply's among them.
        var seesReplies = false
    }
    private let state = Mutex(State())

    package init(mode: Mode = .auto, depth: Int = Transport.defaultDepth, spin: Int = Transport.defaultSpin) {
        self.mode = mode
        self.depth = depth
        self.spin = spin
    }

    /// The fuse module's switch for FUSE over io_uring.
    package static let enableParameter = "/sys/module/fuse/parameters/enable_uring"

    /// Why the kernel will not offer FUSE over io_uring at INIT, or nil if it will
    /// (`enable_uring` is Y).
    package static func ioUringUnavailable() -> String? {
        guard let value = ProcFile.contents(of: enableParameter) else {
            return "this kernel has no FUSE over io_uring (Linux 6.14 or later, built with CONFIG_FUSE_IO_URING)"
        }
        guard value.hasPrefix("Y") else {
            return "the kernel does not offer FUSE over io_uring: the fuse module's enable_uring is N (./mount.sh --io-uring sets it)"
        }
        return nil
    }

    /// The session whose rings this makes, once it is mounted (its descriptor is /dev/fuse's).
    /// Returns whether io_uring may be used, so that npfs's writev must see the replies
    /// (`CustomIO`): not with io_uring=off, nor where the kernel will not offer it, where
    /// every reply goes to /dev/fuse as libfuse writes it, at no cost.
    func attach(_ session: OpaquePointer) -> Bool {
        let possible = mode != .off && Transport.ioUringUnavailable() == nil
        state.withLock {
            $0.session = Session(pointer: session)
            $0.seesReplies = possible
        }
        return possible
    }

    /// The kernel's INIT request (header and body, `size` bytes), before libfuse answers it.
    func kernelInit(_ request: UnsafeRawPointer, size: Int) {
        let header = MemoryLayout<fuse_in_header>.size
        initUnique.store(request.loadUnaligned(fromByteOffset: 8, as: UInt64.self), ordering: .relaxed)
        // fuse_init_in: major, minor, max_readahead, flags, flags2 (each 32 bits).
        var offered = false
        if size >= header + 20 {
            let flags = request.loadUnaligned(fromByteOffset: header + 12, as: UInt32.self)
            let flags2 = request.loadUnaligned(fromByteOffset: header + 16, as: UInt32.self)
            offered = flags & UInt32(FUSE_INIT_EXT) != 0 && flags2 & Transport.overIoUring != 0
        }
        offer.store((offered ? Offer.offered : Offer.notOffered).rawValue, ordering: .relaxed)
        // Without npfs's writev (`attach`) the INIT reply goes straight to /dev/fuse:
        // the transport is decided already.
        if !state.withLock({ $0.seesReplies }) { announce() }
    }

    /// Whether a reply is the one to INIT.
    func isInitReply(_ unique: UInt64) -> Bool {
        unique != 0 && unique == initUnique.load(ordering: .relaxed)
    }

    /// Writes libfuse's INIT reply to /dev/fuse (`descriptor`), with FUSE_OVER_IO_URING
    /// added if the rings could be made; starts them once the kernel has taken it.
    func answerInit(_ descriptor: Int32, _ vectors: UnsafePointer<iovec>, count: Int) -> Int {
        var reply: [UInt8] = []
        for i in 0..<count {
            guard let base = vectors[i].iov_base else { continue }
            reply += UnsafeRawBufferPointer(start: base, count: vectors[i].iov_len)
        }
        let rings = mode != .off && offered ? makeRings(for: &reply, descriptor) : nil
        let written = reply.withUnsafeMutableBytes { bytes -> Int in
            var vector = iovec(iov_base: bytes.baseAddress, iov_len: bytes.count)
            return Glibc.writev(descriptor, &vector, 1)
        }
        if let rings {
            if written >= 0 {
                rings.start()
                state.withLock { $0.rings = rings }
            } else {
                rings.stop()
            }
        }
        announce()
        if mode == .on && !usesRings, let session = state.withLock({ $0.session?.pointer }) {
            Transport.say("npfs: io_uring=on, but \(refusalText): exiting\n")
            fuse_session_exit(session)
        }
        return written
    }

    /// The queues for a successful INIT reply, set up, with FUSE_OVER_IO_URING added to the
    /// reply; nil if the reply is an error or too short, or the queues could not be made
    /// (then `refusal` says why).
    private func makeRings(for reply: inout [UInt8], _ descriptor: Int32) -> RingSet? {
        let out = MemoryLayout<fuse_out_header>.size
        // fuse_init_out: flags at 12, max_write at 20, max_pages at 28, flags2 at 32.
        guard reply.count >= out + 36, let session = state.withLock({ $0.session?.pointer }) else { return nil }
        let (error, maxWrite, maxPages) = reply.withUnsafeBytes {
            ($0.loadUnaligned(fromByteOffset: 4, as: Int32.self), Int($0.loadUnaligned(fromByteOffset: out + 20, as: UInt32.self)),
             Int($0.loadUnaligned(fromByteOffset: out + 28, as: UInt16.self)))
        }
        guard error == 0 else { return nil }
        let payload = max(8192, maxWrite, maxPages * Int(sysconf(Int32(_SC_PAGESIZE))))
        let rings = RingSet(session: session, fuseDescriptor: descriptor, depth: depth, spin: spin, payloadSize: payload)
        let failure = rings.prepare()
        guard failure == 0 else {
            rings.stop()
            state.withLock { $0.refusal = "the rings could not be set up: \(String(cString: strerror(-failure)))" }
            return nil
        }
        reply.withUnsafeMutableBytes { bytes in
            let flags = bytes.loadUnaligned(fromByteOffset: out + 12, as: UInt32.self) | UInt32(FUSE_INIT_EXT)
            let flags2 = bytes.loadUnaligned(fromByteOffset: out + 32, as: UInt32.self) | Transport.overIoUring
            bytes.storeBytes(of: flags, toByteOffset: out + 12, as: UInt32.self)
            bytes.storeBytes(of: flags2, toByteOffset: out + 32, as: UInt32.self)
        }
        return rings
    }

    /// A line on standard error (the daemon's, which `-d` keeps).
    private static func say(_ line: String) {
        _ = line.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
    }

    /// Whether requests are served over io_uring.
    var usesRings: Bool { state.withLock { $0.rings != nil } }

    private var offered: Bool { offer.load(ordering: .relaxed) == Offer.offered.rawValue }

    /// Why io_uring is not used.
    private var refusalText: String {
        if let refusal = state.withLock({ $0.refusal }) { return refusal }
        if mode == .off { return "io_uring=off" }
        return offered ? "io_uring was not set up" : "the kernel does not offer FUSE over io_uring (see ./mount.sh --io-uring)"
    }

    /// With `-d`: which transport serves, on standard error.
    private func announce() {
        guard announces.load(ordering: .relaxed) else { return }
        if let rings = state.withLock({ $0.rings }) {
            Transport.say("npfs: requests over io_uring: \(rings.queues.count) queues of \(depth) entries, polling \(spin) µs\n")
        } else {
            Transport.say("npfs: requests over /dev/fuse: \(refusalText)\n")
        }
    }

    /// Puts the queues' threads back on their CPUs after a `taskset -a -p`.
    func repin() {
        state.withLock { $0.rings }?.repin()
    }

    /// Stops the rings (at the session's end).
    func stop() {
        state.withLock { $0.rings }?.stop()
    }

    /// The root's `user.npfs.transport`, as `KEY=VALUE` lines: `transport=io_uring` or
    /// `dev_fuse`; `io_uring=offered`, `not_offered`, `unknown` (before INIT), `off`
    /// (io_uring=off) or `refused` (offered, but the rings could not be made); with
    /// io_uring, its `queues`, `depth`, their `entries`, the `buffer_bytes` they map and `spin_us`.
    var attributeText: String {
        let (rings, refusal) = state.withLock { ($0.rings, $0.refusal) }
        let io: String
        if mode == .off {
            io = "off"
        } else if refusal != nil {
            io = "refused"
        } else {
            switch Offer(rawValue: offer.load(ordering: .relaxed)) ?? .unknown {
            case .unknown: io = "unknown"
            case .notOffered: io = "not_offered"
            case .offered: io = "offered"
            }
        }
        guard let rings else { return "transport=dev_fuse\nio_uring=\(io)\n" }
        return "transport=io_uring\nio_uring=\(io)\nqueues=\(rings.queues.count)\ndepth=\(depth)\n"
            + "entries=\(rings.entryCount)\nbuffer_bytes=\(rings.bufferBytes)\nspin_us=\(spin)\n"
    }
}
