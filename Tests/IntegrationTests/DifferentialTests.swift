import Foundation
import Glibc
import Testing

/// The same scenario against a kernel FIFO (mkfifo) and an npfs pipe must be observed
/// identically: bytes, counts, errno, poll masks, which calls block and when they finish.
@Suite(.serialized) struct DifferentialTests {
    @Test(arguments: Scenario.all)
    func kernelFifoAndNpfsAgree(_ scenario: Scenario) throws {
        let expected = try Self.kernelFifoLog(scenario)
        let observed = try TestMount.with { mount in ScenarioRun(scenario).observe(at: mount.path("P")) }
        Self.compare(scenario, observed: observed, expected: expected)
    }

    /// The scenario run on a kernel FIFO, checked to be complete: the reference.
    static func kernelFifoLog(_ scenario: Scenario) throws -> [String] {
        let fifoDirectory = try makeTemporaryDirectory()
        defer { rmdir(fifoDirectory) }
        let fifo = fifoDirectory + "/fifo"
        guard mkfifo(fifo, 0o600) == 0 else { throw TestFailure("mkfifo failed") }
        defer { unlink(fifo) }
        let expected = ScenarioRun(scenario).observe(at: fifo)
        // The reference run itself must be complete: each step has its own line ("#N ...").
        let logged = Set(expected.compactMap { $0.hasPrefix("#") ? Int($0.dropFirst().prefix(while: \.isNumber)) : nil })
        #expect(logged == Set(scenario.steps.indices), "every step of the kernel FIFO run is in its log")
        #expect(!expected.contains { $0.hasSuffix("never returned") }, "every kernel FIFO call returned")
        return expected
    }

    static func compare(_ scenario: Scenario, observed: [String], expected: [String]) {
        if ProcessInfo.processInfo.environment["NPFS_SHOW_SCENARIOS"] != nil {
            print("== \(scenario.name)\n" + observed.joined(separator: "\n"))
        }
        #expect(observed == expected, "\(scenario.name): kernel FIFO:\n\(expected.joined(separator: "\n"))\nnpfs:\n\(observed.joined(separator: "\n"))")
    }
}

/// One step of a scenario; descriptors are named by slots ("r", "w", "b").
enum Step: Sendable, CustomStringConvertible {
    case open(String, Int32)
    case close(String)
    case read(String, Int)
    case write(String, String)
    /// One write(2) of this many bytes.
    case fill(String, Int)
    /// poll with timeout 0.
    case poll(String, Int32)
    /// poll with no timeout: may block.
    case pollWait(String, Int32)
    case lseek(String)
    /// epoll_wait with no timeout on a fresh epoll set watching these events (level-triggered).
    case epollWait(String, Int32)
    /// select with no timeout, watching for reading (true) or writing (false).
    case selectWait(String, Bool)
    /// SIGUSR1 to every call still blocked.
    case interrupt

    var description: String {
        switch self {
        case .open(let s, let f): "open \(s) \(flagNames(f))"
        case .close(let s): "close \(s)"
        case .read(let s, let n): "read \(s) \(n)"
        case .write(let s, let text): "write \(s) \"\(text)\""
        case .fill(let s, let n): "write \(s) ×\(n)"
        case .poll(let s, let e): "poll \(s) \(pollNames(Int16(e)))"
        case .pollWait(let s, let e): "poll-wait \(s) \(pollNames(Int16(e)))"
        case .lseek(let s): "lseek \(s)"
        case .epollWait(let s, let e): "epoll-wait \(s) \(pollNames(Int16(e)))"
        case .selectWait(let s, let reading): "select-wait \(s) \(reading ? "read" : "write")"
        case .interrupt: "interrupt blocked calls"
        }
    }
}

struct Scenario: Sendable, CustomTestStringConvertible {
    let name: String
    let steps: [Step]
    var testDescription: String { name }

    static let R = O_RDONLY, W = O_WRONLY, RW = O_RDWR, NB = O_NONBLOCK

    static let all: [Scenario] = [
        Scenario(name: "reader open waits for a writer",
                 steps: [.open("r", R), .open("w", W), .write("w", "hi"), .read("r", 10)]),
        Scenario(name: "writer open waits for a reader",
                 steps: [.open("w", W), .open("r", R), .write("w", "hi"), .read("r", 10)]),
        Scenario(name: "nonblocking reader open without writer reads end of file",
                 steps: [.open("r", R | NB), .read("r", 10)]),
        Scenario(name: "nonblocking writer open without reader is ENXIO",
                 steps: [.open("w", W | NB)]),
        Scenario(name: "nonblocking writer open with a reader",
                 steps: [.open("r", R | NB), .open("w", W | NB), .write("w", "x"), .read("r", 10)]),
        Scenario(name: "read-write open never waits and short reads",
                 steps: [.open("b", RW), .write("b", "abc"), .read("b", 2), .read("b", 10)]),
        Scenario(name: "read waits for data while a writer exists",
                 steps: [.open("b", RW), .read("b", 10), .write("b", "wake")]),
        Scenario(name: "last writer closing gives a blocked reader end of file",
                 steps: [.open("r", R), .open("w", W), .read("r", 10), .close("w")]),
        Scenario(name: "data then end of file",
                 steps: [.open("r", R | NB), .open("w", W), .write("w", "abc"), .close("w"), .read("r", 10), .read("r", 10)]),
        Scenario(name: "write without readers is EPIPE and polls ERR",
                 steps: [.open("b", RW), .open("w", W), .close("b"), .write("w", "x"), .poll("w", POLLOUT)]),
        Scenario(name: "last reader closing fails a blocked writer with EPIPE",
                 steps: [.open("r", R | NB), .open("w", W), .fill("w", 65536), .write("w", "more"), .close("r")]),
        Scenario(name: "nonblocking read of an empty pipe is EAGAIN",
                 steps: [.open("r", R | NB), .open("w", W | NB), .read("r", 10)]),
        Scenario(name: "full pipe: nonblocking write is EAGAIN, no POLLOUT",
                 steps: [.open("b", RW | NB), .fill("b", 65536), .write("b", "x"), .poll("b", POLLIN | POLLOUT)]),
        Scenario(name: "large nonblocking write is partial, then EAGAIN",
                 steps: [.open("b", RW | NB), .fill("b", 61440), .fill("b", 10000), .fill("b", 10000)]),
        Scenario(name: "PIPE_BUF write waits for room for all of it",
                 steps: [.open("r", R | NB), .open("w", W), .fill("w", 65536), .fill("w", 4096),
                         .read("r", 4095), .read("r", 1), .read("r", 65536), .read("r", 65536)]),
        Scenario(name: "blocking write larger than the pipe completes as the reader drains",
                 steps: [.open("r", R | NB), .open("w", W), .fill("w", 100_000), .read("r", 65536), .read("r", 65536)]),
        Scenario(name: "interrupted read fails EINTR and takes nothing",
                 steps: [.open("b", RW), .read("b", 10), .interrupt, .write("b", "after"), .read("b", 10)]),
        Scenario(name: "interrupted open does not count as a reader",
                 steps: [.open("r", R), .interrupt, .open("w", W | NB)]),
        Scenario(name: "interrupted write returns the count it wrote",
                 steps: [.open("r", R | NB), .open("w", W), .fill("w", 100_000), .interrupt, .read("r", 100_000)]),
        Scenario(name: "lseek is ESPIPE",
                 steps: [.open("b", RW), .lseek("b")]),
        Scenario(name: "poll: readable, writable, hang-up after the last writer",
                 steps: [.open("r", R | NB), .poll("r", POLLIN), .open("w", W), .poll("w", POLLOUT), .write("w", "x"),
                         .poll("r", POLLIN), .close("w"), .poll("r", POLLIN), .read("r", 10), .poll("r", POLLIN)]),
        Scenario(name: "hang-up only once a writer was seen",
                 steps: [.open("r", R | NB), .poll("r", POLLIN), .open("w", W), .close("w"), .poll("r", POLLIN)]),
        Scenario(name: "blocking poll wakes when data arrives",
                 steps: [.open("r", R | NB), .open("w", W), .pollWait("r", POLLIN), .write("w", "x")]),
        Scenario(name: "blocking poll of a full pipe wakes when room frees",
                 steps: [.open("b", RW), .fill("b", 65536), .pollWait("b", POLLOUT), .read("b", 4096)]),
        Scenario(name: "epoll wakes when data arrives",
                 steps: [.open("r", R | NB), .open("w", W), .epollWait("r", POLLIN), .write("w", "x")]),
        Scenario(name: "epoll reports hang-up and error",
                 steps: [.open("r", R | NB), .open("w", W), .epollWait("w", POLLOUT), .close("r"), .epollWait("w", POLLOUT)]),
        Scenario(name: "select wakes a writer when room frees",
                 steps: [.open("b", RW), .fill("b", 65536), .selectWait("b", false), .read("b", 8192)]),
        Scenario(name: "select wakes a reader on end of file",
                 steps: [.open("r", R | NB), .open("w", W), .selectWait("r", true), .close("w"), .read("r", 10)]),
        Scenario(name: "blocking poll of a reader wakes on hang-up",
                 steps: [.open("r", R | NB), .open("w", W), .pollWait("r", POLLIN), .close("w")]),
    ]
}

/// Runs a scenario's steps, each on its own thread, and logs what every call did.
final class ScenarioRun: @unchecked Sendable {
    let scenario: Scenario
    private let lock = NSLock()
    private var fds: [String: Int32] = [:]
    private var pending: [(index: Int, step: Step, call: BlockingCall)] = []
    private var log: [String] = []

    init(_ scenario: Scenario) { self.scenario = scenario }

    /// How long a call may take and still count as not blocking.
    static let blockingThreshold = 0.3
    /// How long a blocked call gets to finish after each later step.
    static let wakeThreshold = 0.3

    func observe(at path: String) -> [String] { observe { _ in path } }

    /// The same, each slot's opens made at the path `paths` gives it (mounts of one cluster),
    /// each close made inside `closing` (which may wait for it to take effect elsewhere).
    func observe(paths: (String) -> String, closing: (_ close: () -> Void) -> Void = { $0() }) -> [String] {
        for (index, step) in scenario.steps.enumerated() {
            if case .interrupt = step {
                log.append("#\(index) interrupt")
                for entry in pending {
                    let outcome = entry.call.interrupt()
                    record(entry, outcome: outcome, prefix: "  #\(entry.index) interrupted ->")
                }
                pending.removeAll()
                continue
            }
            let path = if case .open(let slot, _) = step { paths(slot) } else { "" }
            let take = { [self] in
                let call = BlockingCall { [self] in perform(step, path: path) }
                if let outcome = call.wait(timeout: Self.blockingThreshold) {
                    record((index, step, call), outcome: outcome, prefix: "#\(index) \(step) ->")
                } else {
                    log.append("#\(index) \(step) -> blocks")
                    pending.append((index, step, call))
                }
            }
            if case .close = step { closing(take) } else { take() }
            // Which earlier blocked calls did this step release?
            pending.removeAll { entry in
                guard entry.index != index, let outcome = entry.call.wait(timeout: Self.wakeThreshold) else { return false }
                record(entry, outcome: outcome, prefix: "  #\(entry.index) completes ->")
                return true
            }
        }
        for entry in pending {
            record(entry, outcome: entry.call.interrupt(), prefix: "  #\(entry.index) still blocked at the end, interrupted ->")
        }
        for fd in lock.withLock({ fds.values }) { close(fd) }
        return log
    }

    private func record(_ entry: (index: Int, step: Step, call: BlockingCall), outcome: Outcome?, prefix: String) {
        guard let outcome else { log.append("\(prefix) never returned"); return }
        if case .open(let slot, _) = entry.step, case .ok(let fd) = outcome {
            lock.withLock { fds[slot] = Int32(fd) }
            log.append("\(prefix) opened")
        } else {
            log.append("\(prefix) \(outcome)")
        }
    }

    private func fd(_ slot: String) -> Int32 { lock.withLock { fds[slot] ?? -1 } }

    private func perform(_ step: Step, path: String) -> Outcome {
        switch step {
        case .open(_, let flags): return Sys.open(path, flags)
        case .close(let slot):
            let fd = lock.withLock { fds.removeValue(forKey: slot) ?? -1 }
            return close(fd) == 0 ? .ok(0) : .error(errno)
        case .read(let slot, let n): return Sys.read(fd(slot), n)
        case .write(let slot, let text): return Sys.write(fd(slot), Array(text.utf8))
        case .fill(let slot, let n): return Sys.write(fd(slot), [UInt8](repeating: 0x61, count: n))
        case .poll(let slot, let events): return Sys.poll(fd(slot), Int16(events), timeoutMs: 0)
        case .pollWait(let slot, let events): return Sys.poll(fd(slot), Int16(events), timeoutMs: -1)
        case .lseek(let slot): return Sys.lseek(fd(slot))
        case .epollWait(let slot, let events): return Sys.epollWait(fd(slot), UInt32(events))
        case .selectWait(let slot, let reading): return Sys.selectWait(fd(slot), reading: reading)
        case .interrupt: return .ok(0)
        }
    }
}

func flagNames(_ flags: Int32) -> String {
    var names = [["RDONLY", "WRONLY", "RDWR", "?"][Int(flags & 3)]]
    if flags & O_NONBLOCK != 0 { names.append("NONBLOCK") }
    return names.joined(separator: "|")
}
