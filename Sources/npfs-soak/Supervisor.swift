import ArgumentParser
import Foundation
import Glibc
import NpfsClient
import PipeCore

/// Runs a soak: mounts npfs in a temporary directory, keeps every pipe under test open
/// (O_RDWR, so that no data is discarded while its clients come and go), starts the
/// clients, kills some at random and starts them again, then stops the writers, lets the
/// readers drain every pipe, and checks what they saw.
final class Supervisor {
    struct PipeUnderTest {
        let name: String
        let slots: ClosedRange<UInt32>
    }
    enum Role: Equatable { case writer(pipe: Int, slot: UInt32), reader(pipe: Int), churn(Int) }
    struct Client {
        let role: Role
        let pid: pid_t
    }

    private let npfs: String
    private let options: Run
    private let work: String
    private let mountPoint: String
    private let pipes: [PipeUnderTest]
    private let log: String
    private var clients: [Client] = []
    private var incarnations: [UInt32: UInt32] = [:]
    private var readerRuns: [Int: Int] = [:]
    private var random: SoakRandom
    private var kills = (killed: 0, interrupted: 0, restarted: 0)
    private var daemon: pid_t = 0

    init(npfs: String, _ options: Run) throws {
        self.npfs = npfs
        self.options = options
        random = SoakRandom(seed: options.seed)
        var template = Array((NSTemporaryDirectory() + "npfs-soak-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw ValidationError("cannot make a temporary directory") }
        work = String(cString: made)
        mountPoint = work + "/mnt"
        log = work + "/errors.log"
        mkdir(mountPoint, 0o755)
        var pipes = (0..<options.pairs).map { PipeUnderTest(name: "pair\($0)", slots: UInt32($0)...UInt32($0)) }
        if options.sharedWriters > 0 {
            pipes.append(PipeUnderTest(name: "shared", slots: 1000...UInt32(999 + options.sharedWriters)))
        }
        self.pipes = pipes
    }

    /// Runs the soak and prints its figures; true if everything checked out.
    func run() -> Bool {
        defer { cleanUp() }
        let mountStatus = Spawn.run(Spawn.Request([npfs, "mount", mountPoint], executable: npfs))
        guard mountStatus == 0, let pid = try? NpfsMount(path: mountPoint).daemonProcess() else {
            print("npfs-soak: cannot mount npfs from \(npfs) (status \(mountStatus))")
            return false
        }
        daemon = pid
        usleep(300_000)
        let startRSS = memory(daemon).rss
        let holders = pipes.map { open(mountPoint + "/" + $0.name, O_RDWR) }
        guard holders.allSatisfy({ $0 >= 0 }) else {
            print("npfs-soak: cannot open the pipes under test: \(String(cString: strerror(errno)))")
            return false
        }
        for (index, pipe) in pipes.enumerated() {
            start(.reader(pipe: index))
            for slot in pipe.slots { start(.writer(pipe: index, slot: slot)) }
        }
        for index in 0..<options.churners { start(.churn(index)) }
        var peakRSS = startRSS
        let started = Date()
        while Date().timeIntervalSince(started) < options.duration {
            usleep(UInt32(options.killEvery * 1000))
            restartExited()
            killOne()
            peakRSS = max(peakRSS, memory(daemon).rss)
        }
        let stopped = stopAndDrain()
        holders.forEach { close($0) }
        usleep(2_500_000)
        let end = memory(daemon)
        let alive = kill(daemon, 0) == 0
        return report(seconds: Date().timeIntervalSince(started), drained: stopped, alive: alive,
                      rss: (startRSS, max(peakRSS, end.peak), end.rss))
    }

    // MARK: Clients

    private func start(_ role: Role) {
        let arguments: [String]
        switch role {
        case .writer(let pipe, let slot):
            let incarnation = incarnations[slot, default: 0]
            incarnations[slot] = incarnation + 1
            arguments = ["writer", path(pipe), String(slot), String(incarnation), statusFile(slot, incarnation),
                         String(random.next()), log]
        case .reader(let pipe):
            readerRuns[pipe, default: 0] += 1
            arguments = ["reader", path(pipe), String(pipes[pipe].slots.lowerBound), String(pipes[pipe].slots.upperBound),
                         stateFile(pipe), log]
        case .churn:
            arguments = ["churn", mountPoint, String(random.next())]
        }
        let executable = Spawn.executablePath ?? "/proc/self/exe"
        if let pid = try? Spawn.start(Spawn.Request(["npfs-soak"] + arguments, executable: executable, stdin: "/dev/null")) {
            clients.append(Client(role: role, pid: pid))
        }
    }

    /// Starts anew every client that exited (a new incarnation for a writer).
    private func restartExited(keep: (Role) -> Bool = { _ in true }) {
        var exited: [Role] = []
        clients.removeAll { client in
            guard Spawn.exitStatus(of: client.pid, block: false) != nil else { return false }
            exited.append(client.role)
            return true
        }
        for role in exited where keep(role) {
            kills.restarted += 1
            start(role)
        }
    }

    /// SIGKILL or SIGINT to one client: readers get SIGINT only, since what a reader has
    /// read and not yet checked would die with it, and the check could not tell.
    private func killOne() {
        guard !clients.isEmpty else { return }
        let client = clients[random.below(clients.count)]
        let hard: Bool
        switch client.role {
        case .reader: hard = false
        case .writer: hard = random.below(2) == 0
        case .churn: hard = true
        }
        kill(client.pid, hard ? SIGKILL : SIGINT)
        if hard { kills.killed += 1 } else { kills.interrupted += 1 }
    }

    /// Stops the writers, lets the readers drain every pipe, stops them; false if a pipe
    /// did not drain within a minute.
    private func stopAndDrain() -> Bool {
        for client in clients { if case .writer = client.role { kill(client.pid, SIGINT) } }
        let mount = NpfsMount(path: mountPoint)
        let deadline = Deadline(after: 60)
        var drained = false
        while !deadline.hasPassed {
            restartExited { if case .reader = $0 { true } else { false } }
            let writersLeft = clients.contains { if case .writer = $0.role { true } else { false } }
            if !writersLeft && pipes.allSatisfy({ (try? mount.attribute(.buffered, of: Array($0.name.utf8))) == "0" }) {
                drained = true
                break
            }
            for client in clients { if case .writer = client.role { kill(client.pid, SIGINT) } }
            usleep(50_000)
        }
        for client in clients {
            if case .churn = client.role { kill(client.pid, SIGKILL) } else { kill(client.pid, SIGINT) }
        }
        let stopBy = Date().addingTimeInterval(15)
        while !clients.isEmpty && Date() < stopBy {
            clients.removeAll { Spawn.exitStatus(of: $0.pid, block: false) != nil }
            for client in clients { kill(client.pid, SIGINT) }
            usleep(20_000)
        }
        for client in clients { kill(client.pid, SIGKILL); _ = Spawn.exitStatus(of: client.pid, block: true) }
        return drained && clients.isEmpty
    }

    // MARK: The check

    private func report(seconds: Double, drained: Bool, alive: Bool, rss: (start: Int, peak: Int, end: Int)) -> Bool {
        var problems: [String] = []
        var records = 0, bytes = 0, confirmedTotal = 0
        for (index, pipe) in pipes.enumerated() {
            let state = loadState(stateFile(index))
            records += state.records
            bytes += state.bytes
            if let problem = state.problem { problems.append("\(pipe.name): \(problem)") }
            if !state.leftover.isEmpty { problems.append("\(pipe.name): \(state.leftover.count) bytes of a torn record at the end") }
            for slot in pipe.slots {
                for incarnation in 0..<incarnations[slot, default: 0] {
                    let confirmed = writtenCount(slot, incarnation)
                    let received = Int(state.next["\(slot)/\(incarnation)"] ?? 0)
                    confirmedTotal += confirmed
                    if received < confirmed {
                        problems.append("\(pipe.name): writer \(slot)/\(incarnation) wrote \(confirmed) records, \(received) arrived")
                    } else if received > confirmed + 1 {
                        problems.append("\(pipe.name): writer \(slot)/\(incarnation) wrote \(confirmed) records, \(received) arrived")
                    }
                }
            }
        }
        let clientErrors = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
        problems += clientErrors
        if !drained { problems.append("the pipes did not drain (or a client did not stop) after the writers stopped") }
        if !alive { problems.append("the daemon died") }
        if rss.end > rss.start + 16 * 1024 { problems.append("the daemon's RSS did not fall back: \(rss.end) KiB after \(rss.start) KiB") }
        let writers = incarnations.values.reduce(0) { $0 + Int($1) }
        print("""
            npfs-soak: \(String(format: "%.0f", seconds)) s, \(options.pairs) writer/reader pairs and \(options.sharedWriters) writers sharing one pipe, \(options.churners) churners, seed \(options.seed)
            records checked: \(records) (\(bytes / 1_048_576) MiB) in \(pipes.count) pipes, from \(writers) writer incarnations; \(confirmedTotal) confirmed by their writers
            clients: \(kills.killed) SIGKILL, \(kills.interrupted) SIGINT, \(kills.restarted) restarted; readers started \(readerRuns.values.reduce(0, +)) times
            daemon: \(alive ? "alive" : "DEAD") (pid \(daemon)); RSS start \(rss.start / 1024) MiB, peak \(rss.peak / 1024) MiB, end \(rss.end / 1024) MiB
            lost, torn, interleaved or duplicated: \(problems.isEmpty ? "none" : "\(problems.count) problems")
            """)
        for problem in problems.prefix(20) { print("  " + problem) }
        print(problems.isEmpty ? "verdict: PASS" : "verdict: FAIL")
        print(problems.isEmpty ? "soak: 1 passed, 0 failed" : "soak: 0 passed, 1 failed")
        return problems.isEmpty
    }

    // MARK: Files and figures

    private func path(_ pipe: Int) -> String { mountPoint + "/" + pipes[pipe].name }
    private func statusFile(_ slot: UInt32, _ incarnation: UInt32) -> String { work + "/written-\(slot)-\(incarnation)" }
    private func stateFile(_ pipe: Int) -> String { work + "/reader-\(pipe).json" }

    private func writtenCount(_ slot: UInt32, _ incarnation: UInt32) -> Int {
        guard let data = FileManager.default.contents(atPath: statusFile(slot, incarnation)), data.count >= 8 else { return 0 }
        return Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    }

    /// The daemon's resident size and its peak (VmRSS, VmHWM), in KiB.
    private func memory(_ pid: pid_t) -> (rss: Int, peak: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name) } ?? ""
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    private func cleanUp() {
        for client in clients { kill(client.pid, SIGKILL); _ = Spawn.exitStatus(of: client.pid, block: true) }
        if daemon > 0 { _ = Spawn.run(Spawn.Request([npfs, "unmount", mountPoint], executable: npfs)) }
        try? FileManager.default.removeItem(atPath: work)
    }
}
