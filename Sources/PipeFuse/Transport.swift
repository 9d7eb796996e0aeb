import CFuse3
import Glibc
import Synchronization

/// How requests travel between the kernel and this daemon: over /dev/fuse, with one
/// thread at a time reading it (`ServingLoop`). What the kernel offered at INIT is kept
/// for `npfs status`: FUSE over io_uring (Linux 6.14 and later, built with
/// CONFIG_FUSE_IO_URING) is offered only while the fuse module's `enable_uring` is Y
/// (`./mount.sh --io-uring`); npfs does not serve over it yet.
package final class Transport: Sendable {
    /// FUSE_OVER_IO_URING, bit 41 of INIT's flags: bit 9 of `flags2`, there only with FUSE_INIT_EXT.
    static let overIoUring: UInt32 = 1 << (41 - 32)

    private enum Offer: UInt8 {
        case unknown, notOffered, offered
    }

    /// An `Offer`, set once the INIT request was seen.
    private let offer = Atomic<UInt8>(Offer.unknown.rawValue)
    /// With `-d`: what the kernel offered is said on standard error, once.
    let announces = Atomic<Bool>(false)

    package init() {}

    /// The kernel's INIT request (header and body, `size` bytes), before libfuse answers it.
    func kernelInit(_ request: UnsafeRawPointer, size: Int) {
        let header = MemoryLayout<fuse_in_header>.size
        // fuse_init_in: major, minor, max_readahead, flags, flags2 (each 32 bits).
        guard size >= header + 20 else { return offer.store(Offer.notOffered.rawValue, ordering: .relaxed) }
        let flags = request.loadUnaligned(fromByteOffset: header + 12, as: UInt32.self)
        let flags2 = request.loadUnaligned(fromByteOffset: header + 16, as: UInt32.self)
        let offered = flags & UInt32(FUSE_INIT_EXT) != 0 && flags2 & Transport.overIoUring != 0
        offer.store((offered ? Offer.offered : Offer.notOffered).rawValue, ordering: .relaxed)
        if announces.load(ordering: .relaxed) {
            let said = offered ? "npfs: the kernel offers FUSE over io_uring, which npfs does not use yet: requests over /dev/fuse\n"
                : "npfs: the kernel does not offer FUSE over io_uring (see ./mount.sh --io-uring): requests over /dev/fuse\n"
            _ = said.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        }
    }

    /// The root's `user.npfs.transport`: `transport=dev_fuse` and `io_uring=offered`,
    /// `not_offered` or `unknown` (before INIT), as `KEY=VALUE` lines.
    var attributeText: String {
        let io: String
        switch Offer(rawValue: offer.load(ordering: .relaxed)) ?? .unknown {
        case .unknown: io = "unknown"
        case .notOffered: io = "not_offered"
        case .offered: io = "offered"
        }
        return "transport=dev_fuse\nio_uring=\(io)\n"
    }
}
