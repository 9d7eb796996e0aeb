import ArgumentParser
import Foundation
import Glibc
import NpfsClient

/// `npfs-bench`: the small programs `./bench.sh` times, each the same against a kernel FIFO
/// and an npfs pipe. They print figures; the script compares them.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "npfs-bench",
        abstract: "Clients for ./bench.sh: a writer with a set capacity, ping-pong, fan-in, idle pipes, blocked readers.",
        subcommands: [Capacity.self, PingPong.self, Requests.self, FanIn.self, FanInWriter.self, Hold.self, Readers.self]
    )
}

/// `capacity BYTES PATH CMD...`: opens PATH for writing as standard output, gives a kernel
/// FIFO that capacity (F_SETPIPE_SZ; an npfs pipe has its mount's), and runs CMD.
struct Capacity: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run CMD writing to PATH, a FIFO's capacity set first.")
    @Argument var bytes: Int32
    @Argument var path: String
    @Argument(parsing: .captureForPassthrough) var command: [String]

    func run() throws {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw failure("open \(path)") }
        var info = stat()
        if fstat(fd, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO {
            guard fcntl(fd, fSetPipeSize, bytes) >= 0 else { throw failure("F_SETPIPE_SZ \(bytes)") }
        }
        guard dup2(fd, STDOUT_FILENO) >= 0 else { throw failure("dup2") }
        if fd != STDOUT_FILENO { close(fd) }
        var argv = command.map { strdup($0) } + [nil]
        execvp(command.first ?? "true", &argv)
        throw failure("exec \(command.first ?? "")")
    }
}

/// `pingpong AB BA SIZE ROUNDS`: round trips of SIZE bytes, out over AB and echoed back over
/// BA by a forked child; prints microseconds per round trip (after ROUNDS/20 warm-up trips).
struct PingPong: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pingpong", abstract: "Time round trips over two pipes.")
    @Argument var out: String
    @Argument var back: String
    @Argument var size: Int
    @Argument var rounds: Int

    func run() throws {
        let warmUp = rounds / 20
        // A forked child, as the classic ping-pong (the scheduler places it as it places a
        // shell's pipeline); it only opens, reads and writes, then exits.
        let echo = fork()
        guard echo >= 0 else { throw failure("fork") }
        if echo == 0 {
            let input = open(out, O_RDONLY), output = open(back, O_WRONLY)
            var buffer = [UInt8](repeating: 0, count: max(size, 1))
            for _ in 0..<(warmUp + rounds) {
                guard (try? transfer(input, &buffer, size, writing: false)) != nil,
                      (try? transfer(output, &buffer, size, writing: true)) != nil else { _exit(1) }
            }
            _exit(input >= 0 && output >= 0 ? 0 : 1)
        }
        let output = open(out, O_WRONLY), input = open(back, O_RDONLY)
        guard output >= 0, input >= 0 else { throw failure("open") }
        var buffer = [UInt8](repeating: 0, count: max(size, 1))
        var start = 0.0
        for round in 0..<(warmUp + rounds) {
            if round == warmUp { start = now() }
            buffer[0] = UInt8(truncatingIfNeeded: round)
            try transfer(output, &buffer, size, writing: true)
            try transfer(input, &buffer, size, writing: false)
            guard buffer[0] == UInt8(truncatingIfNeeded: round) else { throw failure("the echo came back changed") }
        }
        let microseconds = (now() - start) * 1e6 / Double(max(rounds, 1))
        close(output)
        close(input)
        guard Spawn.exitStatus(of: echo, block: true) == 0 else { throw failure("the echo side failed") }
        print(String(format: "%.3f", microseconds))
    }
}

/// `requests PATH SIZE ROUNDS`: one process writes SIZE bytes into PATH (open for reading
/// and writing) and reads them back, ROUNDS times: each a write and a read that never wait,
/// so the time is the requests' own round trips through the kernel (and, on npfs, the
/// daemon). Prints microseconds per write and read (after ROUNDS/20 warm-up rounds).
struct Requests: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time a write and a read back by one process.")
    @Argument var path: String
    @Argument var size: Int
    @Argument var rounds: Int

    func run() throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw failure("open \(path)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: max(size, 1))
        let warmUp = rounds / 20
        var start = 0.0
        for round in 0..<(warmUp + rounds) {
            if round == warmUp { start = now() }
            buffer[0] = UInt8(truncatingIfNeeded: round)
            try transfer(fd, &buffer, size, writing: true)
            try transfer(fd, &buffer, size, writing: false)
            guard buffer[0] == UInt8(truncatingIfNeeded: round) else { throw failure("the bytes came back changed") }
        }
        print(String(format: "%.3f", (now() - start) * 1e6 / Double(max(rounds, 1))))
    }
}

/// `fanin PATH WRITERS MEBIBYTES`: WRITERS processes write records of 512 bytes (atomic)
/// to one pipe, one reader checks each record whole and each writer's in order; prints MB/s.
struct FanIn: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fanin", abstract: "Many writers, one checking reader.")
    @Argument var path: String
    @Argument var writers: Int
    @Argument var mebibytes: Int

    static let recordSize = 512

    func run() throws {
        let perWriter = mebibytes << 20 / FanIn.recordSize / max(writers, 1)
        // Read-write, so that the pipe never looks writerless while writers are still
        // starting (a read would see end of file): the reader stops at the last record.
        let reader = open(path, O_RDWR)
        guard reader >= 0 else { throw failure("open \(path)") }
        let self_ = Spawn.executablePath ?? CommandLine.arguments[0]
        let start = now()
        let children = try (0..<writers).map { id in
            try Spawn.start(.init([self_, "fanin-writer", path, String(id), String(perWriter)], executable: self_))
        }
        var next = [Int](repeating: 0, count: writers)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var pending: [UInt8] = []
        var problems = 0
        var arrived = 0
        while arrived < perWriter * writers {
            var entry = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 10_000) != 0 else { break }   // nothing for 10 s: some records are lost
            let got = read(reader, &buffer, buffer.count)
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { throw failure("read") }
            pending.append(contentsOf: buffer[..<got])
            let whole = pending.count / FanIn.recordSize * FanIn.recordSize
            var offset = 0
            while offset < whole {
                let id = Int(pending[offset])
                let sequence = pending[(offset + 1)..<(offset + 9)].reduce(0) { $0 << 8 | Int($1) }
                let fill = UInt8(truncatingIfNeeded: id &+ sequence)
                if id >= writers || sequence != next[id]
                    || pending[(offset + 9)..<(offset + FanIn.recordSize)].contains(where: { $0 != fill }) {
                    problems += 1
                } else {
                    next[id] += 1
                }
                arrived += 1
                offset += FanIn.recordSize
            }
            pending.removeFirst(whole)
        }
        let seconds = now() - start
        close(reader)
        let failed = children.filter { Spawn.exitStatus(of: $0, block: true) != 0 }.count
        guard problems == 0, failed == 0, pending.isEmpty, next.allSatisfy({ $0 == perWriter }) else {
            throw failure("fan-in: \(problems) bad records, \(failed) writers failed, \(next.reduce(0, +)) of \(perWriter * writers) records arrived")
        }
        print(String(format: "%.3f", Double(perWriter * writers * FanIn.recordSize) / seconds / 1e6))
    }
}

struct FanInWriter: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fanin-writer", shouldDisplay: false)
    @Argument var path: String
    @Argument var id: Int
    @Argument var records: Int

    func run() throws {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw failure("open \(path)") }
        var record = [UInt8](repeating: 0, count: FanIn.recordSize)
        for sequence in 0..<records {
            record[0] = UInt8(id)
            for byte in 0..<8 { record[1 + byte] = UInt8(truncatingIfNeeded: sequence >> (8 * (7 - byte))) }
            let fill = UInt8(truncatingIfNeeded: id &+ sequence)
            for index in 9..<FanIn.recordSize { record[index] = fill }
            try transfer(fd, &record, record.count, writing: true)
        }
        close(fd)
    }
}

/// `hold DIR COUNT [--fifo]`: opens COUNT pipes DIR/p00000... (made with mkfifo first with
/// --fifo) and holds them, idle, until standard input ends; says "ready" once all are open.
/// One process that never forks: a child's close of an inherited descriptor would reach npfs.
struct Hold: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Hold idle pipes open.")
    @Argument var directory: String
    @Argument var count: Int
    @Flag var fifo = false

    func run() throws {
        var fds: [Int32] = []
        for index in 0..<count {
            let path = directory + String(format: "/p%05d", index)
            if fifo && mkfifo(path, 0o600) != 0 { throw failure("mkfifo \(path)") }
            let fd = open(path, O_RDWR)
            guard fd >= 0 else { throw failure("open \(path)") }
            fds.append(fd)
        }
        say("ready")
        waitForEndOfInput()
        for fd in fds { close(fd) }
    }
}

/// `readers DIR COUNT`: COUNT threads each blocked in read(2) of its own pipe; says "ready"
/// once all are started, and at the end of standard input wakes them with a byte each.
struct Readers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Readers blocked in empty pipes.")
    @Argument var directory: String
    @Argument var count: Int

    func run() throws {
        let fds = try (0..<count).map { index in
            let fd = open(directory + String(format: "/r%05d", index), O_RDWR)
            guard fd >= 0 else { throw failure("open") }
            return fd
        }
        let done = DispatchGroup()
        for fd in fds {
            let thread = Thread {
                var byte: UInt8 = 0
                while read(fd, &byte, 1) < 0 && errno == EINTR {}
                done.leave()
            }
            thread.stackSize = 64 << 10
            done.enter()
            thread.start()
        }
        say("ready")
        waitForEndOfInput()
        var byte: UInt8 = 1
        for fd in fds { _ = write(fd, &byte, 1) }
        done.wait()
    }
}

// MARK: Helpers

/// F_SETPIPE_SZ of <fcntl.h> (Linux), which Glibc's module does not export.
let fSetPipeSize: Int32 = 1031

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

/// Reads or writes exactly `count` bytes of `buffer`.
func transfer(_ fd: Int32, _ buffer: inout [UInt8], _ count: Int, writing: Bool) throws {
    var done = 0
    while done < count {
        let moved = buffer.withUnsafeMutableBytes { bytes -> Int in
            guard let base = bytes.baseAddress else { return -1 }
            return writing ? write(fd, base + done, count - done) : read(fd, base + done, count - done)
        }
        if moved < 0 && errno == EINTR { continue }
        guard moved > 0 else { throw failure(writing ? "write" : moved == 0 ? "read: end of file" : "read") }
        done += moved
    }
}

/// One line on standard output, written at once (the script waits for it).
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
}

func waitForEndOfInput() {
    var scratch = [UInt8](repeating: 0, count: 64)
    while true {
        let got = read(STDIN_FILENO, &scratch, scratch.count)
        if got < 0 && errno == EINTR { continue }
        if got <= 0 { return }
    }
}

func failure(_ what: String) -> ValidationError {
    ValidationError("\(what): \(String(cString: strerror(errno)))")
}
