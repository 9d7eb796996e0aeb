import CLinux
import Foundation
import Glibc

/// What one system call gave: a count, bytes, poll events, or an errno.
enum Outcome: Equatable, Sendable, CustomStringConvertible {
    case ok(Int)
    case bytes([UInt8])
    case events(Int16)
    case error(Int32)

    var description: String {
        switch self {
        case .ok(let n): "ok \(n)"
        case .bytes(let b): b.count <= 16 ? "bytes \"\(String(decoding: b, as: UTF8.self))\"" : "bytes ×\(b.count)"
        case .events(let e): "events \(pollNames(e))"
        case .error(let e): errnoName(e)
        }
    }
}

/// Runs one system call on its own thread, so that a test can see whether it blocks
/// and end it with a signal: SIGUSR1, whose handler is installed without SA_RESTART,
/// makes a blocked call fail EINTR (for a kernel FIFO and for FUSE alike).
final class BlockingCall: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var outcome: Outcome?
    private var thread: pthread_t?

    init(_ work: @escaping @Sendable () -> Outcome) {
        BlockingCall.installHandler
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGUSR1)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            lock.withLock { self.thread = pthread_self() }
            started.signal()
            let result = work()
            lock.withLock { outcome = result }
            finished.signal()
        }
        thread.start()
        started.wait()
    }

    /// The outcome, or nil if the call is still blocked after `timeout` seconds.
    func wait(timeout: Double) -> Outcome? {
        if let done = lock.withLock({ outcome }) { return done }
        if finished.wait(timeout: .now() + timeout) == .success { finished.signal() }
        return lock.withLock { outcome }
    }

    /// Interrupts the call with SIGUSR1 until it returns; nil if it never does.
    func interrupt(timeout: Double = 5) -> Outcome? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let done = wait(timeout: 0) { return done }
            if let thread = lock.withLock({ self.thread }) { pthread_kill(thread, SIGUSR1) }
            if let done = wait(timeout: 0.05) { return done }
        }
        return wait(timeout: 0)
    }

    private static let installHandler: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0   // no SA_RESTART: blocked calls return EINTR
        sigaction(SIGUSR1, &action, nil)
        // A kernel FIFO raises SIGPIPE with EPIPE; the test wants the errno.
        signal(SIGPIPE, SIG_IGN)
    }()
}

/// Thin wrappers that turn results into `Outcome`s.
enum Sys {
    static func open(_ path: String, _ flags: Int32) -> Outcome {
        let fd = Glibc.open(path, flags | O_CLOEXEC)
        return fd >= 0 ? .ok(Int(fd)) : .error(errno)
    }

    static func read(_ fd: Int32, _ count: Int) -> Outcome {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = Glibc.read(fd, &buffer, count)
        return n >= 0 ? .bytes(Array(buffer[..<n])) : .error(errno)
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) -> Outcome {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return n >= 0 ? .ok(n) : .error(errno)
    }

    static func poll(_ fd: Int32, _ events: Int16, timeoutMs: Int32) -> Outcome {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let n = Glibc.poll(&entry, 1, timeoutMs)
        return n >= 0 ? .events(entry.revents) : .error(errno)
    }

    /// One epoll_wait on a fresh level-triggered epoll set: the events reported for `fd`.
    static func epollWait(_ fd: Int32, _ events: UInt32) -> Outcome {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { return .error(errno) }
        defer { Glibc.close(epoll) }
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(epoll, Int32(EPOLL_CTL_ADD), fd, &event) == 0 else { return .error(errno) }
        var ready = epoll_event()
        let n = epoll_wait(epoll, &ready, 1, -1)
        return n >= 0 ? .events(Int16(truncatingIfNeeded: n == 1 ? ready.events : 0)) : .error(errno)
    }

    /// One select with no timeout: IN or OUT if `fd` became readable or writable.
    static func selectWait(_ fd: Int32, reading: Bool) -> Outcome {
        var set = fd_set()
        withUnsafeMutableBytes(of: &set) { bits in
            bits[Int(fd) / 8] |= UInt8(1 << (Int(fd) % 8))
        }
        let n = reading ? select(fd + 1, &set, nil, nil, nil) : select(fd + 1, nil, &set, nil, nil)
        guard n >= 0 else { return .error(errno) }
        let isSet = withUnsafeBytes(of: &set) { $0[Int(fd) / 8] & UInt8(1 << (Int(fd) % 8)) != 0 }
        return .events(isSet ? Int16(reading ? POLLIN : POLLOUT) : 0)
    }

    static func lseek(_ fd: Int32) -> Outcome {
        let n = Glibc.lseek(fd, 0, SEEK_SET)
        return n >= 0 ? .ok(Int(n)) : .error(errno)
    }

    /// Writes all of `bytes` (for the throughput tests), failing on any error.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { if errno == EINTR { continue }; throw TestFailure("write: \(errnoName(errno))") }
            done += n
        }
    }
}

func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [EAGAIN: "EAGAIN", EINTR: "EINTR", ENXIO: "ENXIO", EPIPE: "EPIPE", ESPIPE: "ESPIPE",
                                  EBADF: "EBADF", EINVAL: "EINVAL", ENOENT: "ENOENT", EPERM: "EPERM", EISDIR: "EISDIR",
                                  ENAMETOOLONG: "ENAMETOOLONG", ENOTCONN: "ENOTCONN", EACCES: "EACCES",
                                  EEXIST: "EEXIST", EBUSY: "EBUSY", ENOTDIR: "ENOTDIR", ENOSPC: "ENOSPC",
                                  ENFILE: "ENFILE", ENOBUFS: "ENOBUFS", EMSGSIZE: "EMSGSIZE"]
    return names[code] ?? "errno \(code)"
}

func pollNames(_ events: Int16) -> String {
    let names: [(Int32, String)] = [(POLLIN, "IN"), (POLLOUT, "OUT"), (POLLERR, "ERR"), (POLLHUP, "HUP"), (POLLNVAL, "NVAL")]
    let set = names.filter { Int32(events) & $0.0 != 0 }.map(\.1)
    return set.isEmpty ? "none" : set.joined(separator: "|")
}

extension BlockingCall {
    /// `work`'s outcome, given `seconds` to finish before it is interrupted (nil if even
    /// that does not end it).
    static func within(_ seconds: Double, _ work: @escaping @Sendable () -> Outcome) -> Outcome? {
        let call = BlockingCall(work)
        return call.wait(timeout: seconds) ?? call.interrupt()
    }
}

extension Sys {
    /// A blocking open (for reading unless `flags` say), given `seconds` before it is
    /// interrupted: its outcome (a descriptor it opened is closed).
    static func openWithin(_ seconds: Double, _ path: String, flags: Int32 = O_RDONLY) -> Outcome? {
        let outcome = BlockingCall.within(seconds) { Sys.open(path, flags) }
        if case .ok(let fd) = outcome { Glibc.close(Int32(fd)) }
        return outcome
    }
}
