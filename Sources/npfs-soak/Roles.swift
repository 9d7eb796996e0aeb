import CLinux
import Foundation
import Glibc
import PipeCore
import Synchronization

/// Set by SIGINT: a writer or reader finishes what it is doing and exits cleanly.
let stopRequested = Atomic<Bool>(false)

/// SIGINT ends a blocked read or write with EINTR (no SA_RESTART) and asks for a clean stop.
func installStopHandler() {
    Signals.install([SIGINT]) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGPIPE, SIG_IGN)
}

/// Appends a line to the soak's error log (shared by every client, O_APPEND).
func logError(_ log: String, _ message: String) {
    let fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { return }
    let line = message + "\n"
    _ = line.withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

/// A small, seedable random generator (xorshift64*), the same in every run.
struct SoakRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }
}

/// Writes records of random sizes, one write(2) each, numbering them from 0; after each
/// one the pipe took, stores how many it has written in `status` (8 bytes). Exits 0 on
/// SIGINT, 1 on anything a FIFO must never do (a partial atomic write, EPIPE with a reader).
func runWriter(pipe: String, slot: UInt32, incarnation: UInt32, status: String, seed: UInt64, log: String) -> Int32 {
    installStopHandler()
    let who = "writer \(slot)/\(incarnation) on \(pipe)"
    let statusFD = open(status, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let fd = open(pipe, O_WRONLY)
    guard fd >= 0, statusFD >= 0 else {
        if stopRequested.load(ordering: .relaxed) && errno == EINTR { return 0 }
        logError(log, "\(who): open: \(String(cString: strerror(errno)))")
        return 1
    }
    var random = SoakRandom(seed: seed)
    var sequence: UInt64 = 0
    while !stopRequested.load(ordering: .relaxed) {
        let record = Record(slot: slot, incarnation: incarnation, sequence: sequence,
                            length: Record.headerSize + random.below(Record.maximumSize - Record.headerSize + 1)).encoded()
        let n = record.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n == record.count else {
            logError(log, "\(who): write of \(record.count) bytes returned \(n < 0 ? String(cString: strerror(errno)) : String(n))")
            return 1
        }
        sequence += 1
        var written = sequence
        _ = pwrite(statusFD, &written, 8, 0)
        if random.below(64) == 0 { usleep(UInt32(random.below(2000))) }
    }
    return 0
}

/// What a reader of one pipe has seen, handed from one reader to the next in a state
/// file: the next sequence number due from each writer incarnation, the bytes of a
/// record whose rest is still in the pipe, the totals, and the first problem found.
struct ReaderState: Codable {
    var next: [String: UInt64] = [:]
    var leftover: [UInt8] = []
    var records = 0
    var bytes = 0
    var problem: String?
}

/// Reads a pipe until SIGINT, checking every record as it arrives: whole, uncorrupted,
/// from a writer of this pipe, each writer's in order with no gap and no duplicate.
func runReader(pipe: String, slots: ClosedRange<UInt32>, stateFile: String, log: String) -> Int32 {
    installStopHandler()
    var state = loadState(stateFile)
    let fd = open(pipe, O_RDONLY)
    guard fd >= 0 else {
        if errno != EINTR { logError(log, "reader of \(pipe): open: \(String(cString: strerror(errno)))") }
        return errno == EINTR ? 0 : 1
    }
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while !stopRequested.load(ordering: .relaxed) {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            state.problem = state.problem ?? "read returned \(n < 0 ? String(cString: strerror(errno)) : "end of file") while a holder kept the pipe open"
            break
        }
        state.bytes += n
        check(Array(buffer[..<n]), slots: slots, into: &state)
    }
    saveState(state, stateFile)
    if let problem = state.problem { logError(log, "reader of \(pipe): \(problem)") }
    return 0
}

/// Takes the whole records at the front of leftover + `bytes`, keeps a partial one.
func check(_ bytes: [UInt8], slots: ClosedRange<UInt32>, into state: inout ReaderState) {
    var stream = state.leftover + bytes
    var whole = 0
    while stream.count - whole >= 8 {
        let length = (4..<8).reduce(0) { $0 | Int(stream[whole + $1]) << (8 * ($1 - 4)) }
        guard length >= Record.headerSize, length <= Record.maximumSize else { break }
        if stream.count - whole < length { break }
        whole += length
    }
    let (records, problem) = Record.parse(Array(stream[..<whole]))
    if let problem, state.problem == nil { state.problem = problem + " (after \(state.records) good records)" }
    for record in records {
        state.records += 1
        guard slots.contains(record.slot) else {
            state.problem = state.problem ?? "a record of writer \(record.slot), which writes to another pipe"
            continue
        }
        let key = "\(record.slot)/\(record.incarnation)"
        let due = state.next[key] ?? 0
        if record.sequence != due && state.problem == nil {
            state.problem = "writer \(key): record \(record.sequence) where \(due) was due (\(record.sequence < due ? "duplicate or reordered" : "lost"))"
        }
        state.next[key] = record.sequence + 1
    }
    if problem == nil { stream.removeFirst(whole) } else { stream.removeAll() }
    state.leftover = stream
}

func loadState(_ path: String) -> ReaderState {
    guard let data = FileManager.default.contents(atPath: path),
          let state = try? JSONDecoder().decode(ReaderState.self, from: data) else { return ReaderState() }
    return state
}

func saveState(_ state: ReaderState, _ path: String) {
    let temporary = path + ".new"
    guard let data = try? JSONEncoder().encode(state), FileManager.default.createFile(atPath: temporary, contents: data) else { return }
    rename(temporary, path)
}

/// Opens, closes, stats, lists and reconfigures throwaway pipes, as busy clients do,
/// until it is killed.
func runChurn(directory: String, seed: UInt64) -> Int32 {
    var random = SoakRandom(seed: seed)
    var info = stat()
    var value = [UInt8](repeating: 0, count: 64)
    while true {
        let name = directory + "/churn\(random.below(32))"
        switch random.below(6) {
        case 0:
            let fd = open(name, O_RDONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        case 1:
            let fd = open(name, O_RDWR)
            if fd >= 0 {
                var bytes = [UInt8](repeating: 9, count: random.below(8192) + 1)
                _ = write(fd, &bytes, min(bytes.count, 4096))
                if random.below(2) == 0 { _ = setxattr(name, "user.npfs.capacity", "1M", 2, 0) }
                close(fd)
            }
        case 2: _ = stat(directory + "/name\(random.below(100_000))", &info)
        case 3:
            if let dir = opendir(directory) { while readdir(dir) != nil {}; closedir(dir) }
        case 4: _ = getxattr(directory, "user.npfs.usage", &value, value.count)
        default: usleep(UInt32(random.below(1000)))
        }
    }
}
