import CFuse3
import CLinux
import Dispatch
import Glibc
import PipeCore
import Synchronization

/// Serves a session's requests on several threads, keeping the one order that matters.
///
/// No handler blocks, so threads add no waiting capacity; they let requests from different
/// processes (a writer's and a reader's) be taken from /dev/fuse and answered at the same
/// time, which is most of a request's cost (two system calls and the wake-ups they make).
///
/// The order kept: one thread at a time reads /dev/fuse (the receiving lock), so requests
/// are taken in the order the kernel queued them, and a RELEASE (and INIT) is handled
/// before the lock is let go, before any later request is even taken. A close() queues its
/// RELEASE before it returns, and a reader's next poll or read must not overtake it, or it
/// would miss the hang-up a kernel FIFO shows at once. Every other request is synchronous
/// for its caller, so nothing another process does can depend on its place in the queue.
///
/// When this process may run on one CPU only (`taskset`), threads cannot run at once and
/// handing the receiving lock over would only add switches between them: the thread that
/// holds it keeps it and answers every request itself. The affinity is checked ten times
/// a second.
///
/// Shutdown: the thread that called `run` blocks nothing and waits; a shutdown signal
/// (libfuse's handler marks the session exited), the unmount (a worker's read ends) or the
/// deadline wakes it, and it knocks the workers out of their reads with `knockSignal`.
/// Unchecked Sendable: the workers share the session, which libfuse makes safe to receive
/// from (one thread at a time, under `receiving`) and to process and answer on any thread.
final class ServingLoop: @unchecked Sendable {
    /// Interrupts a worker's read of /dev/fuse at shutdown; its handler does nothing.
    static let knockSignal = SIGUSR2

    private let session: OpaquePointer
    /// Held while reading /dev/fuse. Synchronization's Mutex spins a while before it
    /// sleeps, so the next thread takes over the moment the holder lets go; a pthread
    /// mutex, whose waiters sleep at once, measured slower (4 KiB transfers 0.18 against
    /// 0.22 GB/s, unpinned round trips 58 against 42 µs) though it burns less CPU.
    private let receiving = Mutex<Void>(())
    private let stopping = Atomic<Bool>(false)
    /// Posted by each worker as it ends.
    private let finished: UnsafeMutablePointer<sem_t>
    /// A negative errno from a failed read of /dev/fuse, or 0.
    private let failure = Atomic<Int32>(0)
    /// More than one CPU is allowed: the receiving lock is let go after each request.
    private let parallel = Atomic<Bool>(npfs_allowed_cpus() > 1)

    /// Told of the kernel's INIT request, before it is handled.
    private let transport: Transport?

    init(session: OpaquePointer, transport: Transport? = nil) {
        self.session = session
        self.transport = transport
        finished = .allocate(capacity: 1)
        sem_init(finished, 0, 0)
        ServingLoop.installKnockHandler()
    }

    deinit {
        sem_destroy(finished)
        finished.deallocate()
    }

    /// Serves on `threads` threads until the session exits (unmount, a signal) or, if
    /// given, `deadline` (CLOCK_REALTIME) passes. Returns 0, or the negative errno of a
    /// failed read of /dev/fuse.
    func run(threads: Int, deadline: timespec? = nil) -> Int32 {
        var workers: [pthread_t] = []
        for _ in 0..<max(threads, 1) {
            guard let worker = startWorker() else { break }
            workers.append(worker)
        }
        if workers.isEmpty { return -EAGAIN }
        let affinity = DispatchSource.makeTimerSource(queue: .global())
        affinity.schedule(deadline: .now() + 0.1, repeating: 0.1)
        affinity.setEventHandler { [self] in checkCPUs() }
        affinity.resume()
        defer { affinity.cancel() }
        var ended = 0
        while ended < workers.count {
            if stopping.load(ordering: .acquiring) {
                // Knock until every worker has seen the stop: one may be on its way into read().
                for worker in workers { pthread_kill(worker, ServingLoop.knockSignal) }
                var soon = timespec()
                clock_gettime(CLOCK_REALTIME, &soon)
                soon.tv_nsec += 20_000_000
                if soon.tv_nsec >= 1_000_000_000 { (soon.tv_sec, soon.tv_nsec) = (soon.tv_sec + 1, soon.tv_nsec - 1_000_000_000) }
                if sem_timedwait(finished, &soon) == 0 { ended += 1 }
                continue
            }
            let waited: Int32
            if var deadline { waited = sem_timedwait(finished, &deadline) } else { waited = sem_wait(finished) }
            if waited == 0 {
                ended += 1
                stop()   // one worker ended: the session is over for all
            } else if errno == ETIMEDOUT || fuse_session_exited(session) != 0 {
                stop()
            }
        }
        for worker in workers { pthread_join(worker, nil) }
        return failure.load(ordering: .relaxed)
    }

    /// Notices a change of the CPUs this process may run on (and puts the io_uring queues'
    /// threads back on theirs).
    private func checkCPUs() {
        parallel.store(npfs_allowed_cpus() > 1, ordering: .relaxed)
        transport?.repin()
    }

    private func stop() {
        stopping.store(true, ordering: .releasing)
    }

    private var mustStop: Bool { stopping.load(ordering: .acquiring) || fuse_session_exited(session) != 0 }

    /// One worker: takes requests under the receiving lock, answers there those whose place
    /// in the queue matters (and, on one CPU, all of them), lets the lock go otherwise.
    private func work() {
        var buffer = fuse_buf()
        defer {
            free(buffer.mem)
            sem_post(finished)
        }
        while !mustStop {
            let received = receiving.withLock { _ -> Int32 in
                while !mustStop {
                    let received = fuse_session_receive_buf(session, &buffer)
                    guard received > 0 else { return received }
                    let opcode = buffer.opcode
                    if opcode == FUSE_INIT.rawValue, let transport, let memory = buffer.mem {
                        transport.kernelInit(memory, size: Int(received))
                    }
                    if parallel.load(ordering: .relaxed) && !ServingLoop.keepsItsPlace(opcode) { return received }
                    fuse_session_process_buf(session, &buffer)
                }
                return 0
            }
            if received == -EINTR || received == -EAGAIN { continue }
            if received <= 0 {
                if received < 0 { failure.store(received, ordering: .relaxed) }
                break
            }
            fuse_session_process_buf(session, &buffer)
        }
        stop()
    }

    /// Whether a request (by its opcode) must be handled before the next one is taken:
    /// RELEASE (see the type's comment), INIT (libfuse answers anything before it EIO), and
    /// one whose header is not in memory (nil).
    private static func keepsItsPlace(_ opcode: UInt32?) -> Bool {
        guard let opcode else { return true }
        return opcode == FUSE_RELEASE.rawValue || opcode == FUSE_INIT.rawValue
    }

    /// Starts a worker with the shutdown signals blocked (the thread in `run` takes them).
    private func startWorker() -> pthread_t? {
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let loop = Unmanaged<ServingLoop>.fromOpaque(context).takeRetainedValue()
            loop.work()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<ServingLoop>.fromOpaque(context).release()
            return nil
        }
        return thread
    }

    /// A handler that does nothing, installed without SA_RESTART so that it ends a read.
    private static func installKnockHandler() {
        Signals.install([knockSignal]) { _ in }
    }
}

extension fuse_buf {
    /// A request's opcode, if its header is in memory.
    var opcode: UInt32? {
        guard flags.rawValue & FUSE_BUF_IS_FD.rawValue == 0, let mem, size >= MemoryLayout<fuse_in_header>.size else { return nil }
        return mem.loadUnaligned(as: fuse_in_header.self).opcode
    }
}
