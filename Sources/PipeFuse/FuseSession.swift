import CFuse3
import Glibc

/// One mounted npfs: a libfuse low-level session from creation to unmount.
///
/// Signals: libfuse's handlers turn SIGINT, SIGTERM and SIGHUP into a clean exit of the
/// loop (its read of /dev/fuse is interrupted: other threads, Dispatch's, block them);
/// npfs then answers every waiting request, unmounts and destroys the session.
public final class FuseSession {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private let filesystem: FuseFilesystem
    private let session: OpaquePointer
    private var mountpoint: String?
    private var closed = false

    /// Creates the session. `options` are FUSE `-o` options; `debug` makes libfuse log every request.
    public init(filesystem: FuseFilesystem, options: [String], debug: Bool) throws(Failure) {
        self.filesystem = filesystem
        var arguments = ["npfs"]
        if !options.isEmpty { arguments += ["-o", options.joined(separator: ",")] }
        if debug { arguments.append("-d") }
        var cStrings = arguments.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var ops = FuseOperations.table()
        let userdata = Unmanaged.passUnretained(filesystem).toOpaque()
        let created = cStrings.withUnsafeMutableBufferPointer { argv -> OpaquePointer? in
            var args = npfs_fuse_args(Int32(argv.count), argv.baseAddress)
            defer { fuse_opt_free_args(&args) }
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
        }
        guard let created else { throw Failure(description: "libfuse rejected the options: \(options.joined(separator: ","))") }
        session = created
    }

    /// Mounts at `path` and installs the signal handlers.
    public func mount(at path: String) throws(Failure) {
        guard fuse_set_signal_handlers(session) == 0 else { throw Failure(description: "cannot install signal handlers") }
        guard fuse_session_mount(session, path) == 0 else {
            fuse_remove_signal_handlers(session)
            throw Failure(description: "cannot mount on \(path)")
        }
        mountpoint = path
    }

    /// Serves requests until unmounted or signalled, then answers every waiting request,
    /// unmounts and destroys the session. Returns 0 on a clean exit.
    ///
    /// One thread serves every request, in the order the kernel queued them. No handler
    /// blocks, so more threads would add no waiting capacity, only reordering: a close()
    /// queues its (asynchronous) RELEASE before it returns, and a reader's next poll or
    /// read must not overtake it, or it would miss the hang-up a kernel FIFO shows at once.
    public func run() -> Int32 {
        let result = fuse_session_loop(session)
        close()
        // A signal that ended the loop is a requested, clean exit.
        return result < 0 ? 1 : 0
    }

    /// Answers waiting requests, unmounts and frees the session (also when `run` never ran).
    public func close() {
        guard !closed else { return }
        closed = true
        filesystem.releaseAllWaiters()
        if mountpoint != nil {
            fuse_session_unmount(session)
            fuse_remove_signal_handlers(session)
            mountpoint = nil
        }
        fuse_session_destroy(session)
    }
}
