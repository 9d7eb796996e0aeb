import CFuse3
import Dispatch
import Foundation
import Glibc
import PipeCore

/// One mounted npfs: a libfuse low-level session from creation to unmount.
///
/// Signals: libfuse's handlers turn SIGINT, SIGTERM and SIGHUP into a clean exit of the
/// loop (its read of /dev/fuse is interrupted: other threads, Dispatch's, block them).
package final class FuseSession {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    private let filesystem: FuseFilesystem
    private let session: OpaquePointer
    private var mountpoint: String?
    private var closed = false
    private var handlersInstalled = false
    /// Tells when the mount is detached while processes still hold it.
    private let watch = MountWatch()

    /// Creates the session. `options` are FUSE `-o` options; `debug` makes libfuse log every request.
    package init(filesystem: FuseFilesystem, options: [String], debug: Bool) throws(Failure) {
        self.filesystem = filesystem
        FuseLog.install(echo: debug)
        filesystem.transport.announces.store(debug, ordering: .relaxed)
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
        guard let created else {
            throw Failure(description: "libfuse rejected the options \(options.joined(separator: ","))"
                          + (FuseLog.lastMessage.map { ": \($0)" } ?? ""))
        }
        session = created
        filesystem.invalidator.attach(created)
    }

    /// Mounts at `path` and installs the signal handlers.
    package func mount(at path: String) throws(Failure) {
        guard fuse_set_signal_handlers(session) == 0 else { throw Failure(description: "cannot install signal handlers") }
        handlersInstalled = true
        guard fuse_session_mount(session, path) == 0 else {
            throw Failure(description: "cannot mount on \(path)" + (FuseLog.lastMessage.map { ": \($0)" } ?? ""))
        }
        mountpoint = path
        watch.start(mountpoint: path)
        // Where io_uring may be used, replies go through npfs's own writev, which routes
        // them to io_uring once the kernel takes it at INIT (see `Transport`).
        if filesystem.transport.attach(session) {
            guard CustomIO.install(on: session) else { throw Failure(description: "cannot install npfs's transport on the session") }
        }
    }

    /// Waits until the kernel's INIT has been answered (a stat of the mount point, served
    /// by this session, returns), then runs `ready`; never if the mount fails. Call before
    /// `run`. Without `ready` (a daemon in the foreground) nothing is waited for: the
    /// daemon then never touches its own mount, so that it also runs under valgrind,
    /// which lets no other thread run while one is blocked in a stat of the mount.
    package func whenServing(_ ready: (@Sendable () -> Void)?) {
        guard let path = mountpoint else { return }
        guard let ready else { return FuseLog.startEchoing() }
        DispatchQueue.global().async {
            var info = stat()
            guard stat(path, &info) == 0 else { return }
            FuseLog.startEchoing()
            ready()
        }
    }

    /// Serves requests until unmounted or signalled, then shuts down cleanly: answers every
    /// waiting request, detaches the mount, lets the processes that still hold pipes see
    /// end of file and close them (for at most `grace` seconds), and destroys the session.
    /// Returns 0 on a clean exit.
    ///
    /// `threads` threads serve the requests (see `ServingLoop` for the order they keep).
    /// Once a second, the one housekeeping timer frees idle buffers, hands idle names back,
    /// watches for a lazy unmount, and runs `housekeeping` (the daemon's memory trim).
    package func run(threads: Int, grace: Double = 2, housekeeping extra: @escaping @Sendable () -> Void = {}) -> Int32 {
        let housekeeping = DispatchSource.makeTimerSource(queue: .global())
        housekeeping.schedule(deadline: .now() + 1, repeating: 1)
        housekeeping.setEventHandler { [filesystem, watch] in
            filesystem.everySecond()
            // Detached with pipes still open: waiting opens can no longer get a partner.
            if watch.detachedNow() { filesystem.registry.detach() }
            extra()
        }
        housekeeping.resume()
        defer { housekeeping.cancel() }
        let result = ServingLoop(session: session, transport: filesystem.transport).run(threads: threads)
        filesystem.shutDown()
        detach()
        if filesystem.registry.openCount > 0 { serveLastCloses(threads: threads, grace: grace) }
        close()
        return result < 0 ? 1 : 0
    }

    /// Serves again until the last open pipe is closed (the kernel then ends the detached
    /// mount's connection) or `grace` seconds pass (or a signal comes).
    private func serveLastCloses(threads: Int, grace: Double) {
        fuse_session_reset(session)
        _ = ServingLoop(session: session).run(threads: threads, deadline: Deadline(after: grace).realtime)
    }

    /// Lazily unmounts, keeping the connection open (fuse_session_unmount would close it).
    private func detach() {
        guard let path = mountpoint else { return }
        mountpoint = nil
        if geteuid() == 0 {
            _ = umount2(path, Int32(MNT_DETACH))
        } else {
            runQuietly(["fusermount3", "-u", "-z", "-q", path])
        }
    }

    /// Answers waiting requests, unmounts and frees the session (also when `run` never ran).
    package func close() {
        guard !closed else { return }
        closed = true
        filesystem.shutDown()
        if handlersInstalled { fuse_remove_signal_handlers(session) }
        detach()
        filesystem.transport.stop()
        // A notification stuck on the root's lock would use the session after it is freed:
        // leave it to the process's exit then.
        if filesystem.invalidator.detach() { fuse_session_destroy(session) }
    }
}

/// Runs a helper program and waits for it, with its output discarded.
private func runQuietly(_ argv: [String]) {
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawnp(&pid, argv[0], nil, nil, &cArgs, environ) == 0 else { return }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
}
