import CLinux
import Dispatch
import Glibc
import PipeCluster
import PipeCore
import PipeFuse

/// The npfs daemon in the foreground: mounts, serves until unmounted or signalled, exits.
struct Daemon {
    let path: String
    let options: MountOptions
    let debug: Bool
    /// Background mode: told "mounted" by one byte, after which stdio goes to /dev/null.
    let readyFD: Int32?
    /// Tests: when this descriptor reports hang-up (its writer died), shut down.
    let watchdogFD: Int32?

    func serve() throws -> Int32 {
        if options.ioUring == .on, let absent = Transport.ioUringUnavailable() {
            throw CommandError("io_uring=on, but \(absent)")
        }
        prepareSignals()
        // The name (comm) `ps`, `top` and the OOM killer show, however the binary was started.
        let comm = open("/proc/self/comm", O_WRONLY)
        if comm >= 0 {
            _ = write(comm, "npfs", 4)
            close(comm)
        }
        // The one place that chooses where pipes live: in this process, or in a cluster.
        let store: any PipeStore
        var cluster: PostgresPipeStore?
        if let clusterOptions = options.cluster {
            let shared: PostgresPipeStore
            do {
                shared = try PostgresPipeStore(settings: try clusterOptions.settings())
            } catch let error as ClusterError {
                throw CommandError(error.description)
            }
            (cluster, store) = (shared, shared)
        } else {
            store = LocalPipeStore(limits: options.limits)
        }
        defer { cluster?.leave() }
        let registry = PipeRegistry(configuration: .init(pipe: options.pipe, ignoreCase: options.ignoreCase,
                                                         pipeMode: options.pipeMode, limits: options.limits,
                                                         protection: options.protectedPipes, mountOwner: getuid()),
                                    store: store)
        let filesystem = FuseFilesystem(registry: registry, maxRead: options.maxRead,
                                        transport: Transport(mode: options.ioUring, depth: options.ioUringDepth, spin: options.ioUringSpin))
        let session: FuseSession
        do {
            session = try FuseSession(filesystem: filesystem, options: options.fuseOptions, debug: debug)
        } catch {
            throw CommandError(error.description)
        }
        do {
            try session.mount(at: path)
        } catch {
            session.close()
            throw CommandError(error.description)
        }
        // "Mounted" only once the kernel's INIT has been answered: a mount that libfuse
        // then refuses makes `npfs mount` fail, not succeed and vanish.
        let readyFD = self.readyFD
        if let readyFD {
            session.whenServing { Daemon.detachFromCaller(readyFD) }
        } else {
            session.whenServing(nil)
        }
        if let watchdogFD { startWatchdog(watchdogFD) }
        MemoryReturn.configure()
        return withExtendedLifetime(filesystem) {
            session.run(threads: options.threads ?? Daemon.defaultThreads, housekeeping: MemoryReturn.trimIfFreed)
        }
    }

    /// One thread per CPU this process may run on, at least 2 (a writer's and a reader's
    /// requests are then answered at once), at most 8.
    static var defaultThreads: Int { min(max(Int(npfs_allowed_cpus()), 2), 8) }

    /// A caller may have blocked or ignored the shutdown signals (test runners, `nohup`,
    /// background jobs of a non-interactive shell): restore them so libfuse can install
    /// its handlers (it leaves alone a signal that is not at its default).
    private func prepareSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal, SIG_DFL)
            sigaddset(&set, signal)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Tells the waiting `npfs mount` that the mount is up, and lets go of its terminal.
    private static func detachFromCaller(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
        close(fd)
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for target in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] { dup2(null, target) }
            if null > STDERR_FILENO { close(null) }
        }
    }

    /// Waits (on a Dispatch thread, which blocks signals) for the descriptor to hang up,
    /// then asks this process to shut down as SIGTERM would.
    private func startWatchdog(_ fd: Int32) {
        DispatchQueue.global().async {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while true {
                let ready = poll(&entry, 1, -1)
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 || entry.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { break }
                var scratch = [UInt8](repeating: 0, count: 64)
                if read(fd, &scratch, scratch.count) <= 0 { break }
            }
            kill(getpid(), SIGTERM)
        }
    }
}
