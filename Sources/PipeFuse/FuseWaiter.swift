import PipeCore
import Synchronization

/// A FUSE request waiting in a pipe: the deferred reply of an open, read or write.
///
/// The pipe resumes it exactly once, from whichever thread made it ready; an interrupt
/// marks it and asks the pipe to withdraw it (see `FuseWaiters.interrupted`). Only the
/// pipe keeps it alive (see `WaiterTable`): one dropped unresumed
/// answers its request EIO as it goes (a debug build stops there).
final class FuseWaiter: PipeWaiter {
    let id: UInt64
    let inode: InodeNumber
    private let request: Mutex<FuseRequest?>
    private let interrupted = Atomic<Bool>(false)
    private unowned let waiters: FuseWaiters

    init(_ request: consuming FuseRequest, id: UInt64, inode: InodeNumber, waiters: FuseWaiters) {
        self.id = id
        self.inode = inode
        self.waiters = waiters
        self.request = Mutex(Optional(request))
    }

    var isInterrupted: Bool { interrupted.load(ordering: .acquiring) }

    func markInterrupted() { interrupted.store(true, ordering: .releasing) }

    /// Lets interrupts reach this waiter (by its id, through `FuseWaiters.interrupted`),
    /// which must be findable first: the callback may run inside this call.
    func registerInterrupt() { request.withLock { $0?.onInterrupt(key: id) } }

    /// Called under the pipe's lock: the reply is sent from the pipe's buffer, uncopied.
    func resume(reading data: ReadData) {
        waiters.forget(id)
        guard let request = request.withLock({ $0.take() }) else {
            assertionFailure("a waiter was resumed twice")
            return
        }
        request.data(data)
    }

    func resume(_ reply: PipeReply) {
        waiters.forget(id)
        guard let request = request.withLock({ $0.take() }) else {
            assertionFailure("a waiter was resumed twice")
            return
        }
        if case .opened(let handle) = reply {
            // A refused open reply means the open was abandoned: no release will come.
            if !request.opened(handle.rawValue) { waiters.registry.release(handle) }
        } else {
            request.send(reply)
        }
    }

    /// Shutdown: a request still waiting after every pipe answered its waiters is a bug;
    /// it is answered EIO rather than left hanging.
    func abandon() {
        guard let request = request.withLock({ $0.take() }) else { return }
        assertionFailure("a waiting request outlived the shutdown")
        request.fail(.ioError)
    }

    deinit { waiters.forget(id) }
}

/// A poll answered later (a cluster's pipe): once, or EBADF if it never was.
final class FusePollReplier: PollReplier {
    private let request: Mutex<FuseRequest?>

    init(_ request: consuming FuseRequest) { self.request = Mutex(Optional(request)) }

    func reply(_ events: PollEvents) { request.withLock { $0.take() }?.poll(events) }

    deinit { request.withLock { $0.take() }?.fail(.badFileDescriptor) }
}

/// The kernel's wish to hear when an open's poll readiness changes.
/// Unchecked Sendable: libfuse's poll handle may be notified and freed from any thread, once.
final class FusePollNotifier: PollNotifier, @unchecked Sendable {
    private let handle: OpaquePointer

    init(_ handle: OpaquePointer) { self.handle = handle }

    func notify() { FuseFilesystem.notifyPoll(handle) }

    deinit { FuseFilesystem.destroyPollHandle(handle) }
}
