import CLinux
import Glibc
import SystemPackage

/// Every system call of the client library, each turning a C result into a Swift value or
/// an `Errno`. Paths and names are bytes, as the kernel takes them: a pipe's name need
/// not be UTF-8.
enum Syscalls {
    /// getxattr(2); grows its buffer until the value fits.
    static func getxattr(_ path: [UInt8], _ name: [UInt8]) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let length = withCStrings(path, name) { CLinux.getxattr($0, $1, &buffer, buffer.count) }
            if length >= 0 { return Array(buffer[..<length]) }
            guard errno == ERANGE, buffer.count < 1 << 20 else { throw Errno(rawValue: errno) }
            buffer = [UInt8](repeating: 0, count: buffer.count * 4)
        }
    }

    /// getxattr(2) into a buffer of `size` bytes, once (ERANGE if the value is larger).
    static func getxattr(_ path: [UInt8], _ name: [UInt8], size: Int) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(size, 1))
        let length = withCStrings(path, name) { CLinux.getxattr($0, $1, &buffer, size) }
        guard length >= 0 else { throw Errno(rawValue: errno) }
        return Array(buffer[..<length])
    }

    /// setxattr(2), creating or replacing.
    static func setxattr(_ path: [UInt8], _ name: [UInt8], _ value: [UInt8]) throws(Errno) {
        let result = withCStrings(path, name) { CLinux.setxattr($0, $1, value, value.count, 0) }
        guard result == 0 else { throw Errno(rawValue: errno) }
    }

    /// removexattr(2).
    static func removexattr(_ path: [UInt8], _ name: [UInt8]) throws(Errno) {
        let result = withCStrings(path, name) { CLinux.removexattr($0, $1) }
        guard result == 0 else { throw Errno(rawValue: errno) }
    }

    /// The entries of a directory, without `.` and `..`: names as bytes, and whether each
    /// is a directory (as readdir's d_type says).
    static func directoryEntries(_ path: [UInt8]) throws(Errno) -> [DirectoryEntry] {
        guard let directory = withCString(path, { opendir($0) }) else { throw Errno(rawValue: errno) }
        defer { closedir(directory) }
        var entries: [DirectoryEntry] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name != [UInt8(ascii: ".")] && name != [UInt8(ascii: "."), UInt8(ascii: ".")] {
                entries.append(DirectoryEntry(name: name, isDirectory: entry.pointee.d_type == UInt8(DT_DIR)))
            }
        }
        return entries
    }

    /// The target of /proc/self/exe: this program's file.
    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// posix_spawn(p) with an empty signal mask and every catchable signal at its default,
    /// whatever the caller blocks or ignores. See `Spawn.start`.
    static func spawn(_ request: Spawn.Request) throws(Errno) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        let setsid: Int32 = 0x80   // POSIX_SPAWN_SETSID (glibc, not imported without _GNU_SOURCE)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (request.newSession ? setsid : 0)))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin = request.stdin { posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, stdin, O_RDONLY, 0) }
        if let output = request.output {
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        }
        for fd in request.keep { posix_spawn_file_actions_adddup2(&actions, fd, fd) }   // clears FD_CLOEXEC
        let environment = request.environment.map { $0.map { "\($0.key)=\($0.value)" } }
        var cArgs = request.arguments.map { strdup($0) } + [nil]
        var cEnv = (environment ?? []).map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let result = cEnv.withUnsafeMutableBufferPointer { env -> Int32 in
            let envp = environment == nil ? environ : env.baseAddress
            if let executable = request.executable {
                return posix_spawn(&pid, executable, &actions, &attributes, &cArgs, envp)
            }
            return posix_spawnp(&pid, request.arguments.first ?? "", &actions, &attributes, &cArgs, envp)
        }
        guard result == 0 else { throw Errno(rawValue: result) }
        return pid
    }

    /// write(2) until every byte is written (or an error other than EINTR).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw Errno(rawValue: result < 0 ? errno : EIO) }
            written += result
        }
    }

    /// waitpid(2): the exit code, or 128 + the signal that ended it; nil if it still runs
    /// (`block` false) or is not a child.
    static func exitStatus(of pid: pid_t, block: Bool) -> Int32? {
        var raw: Int32 = 0
        while true {
            let result = waitpid(pid, &raw, block ? 0 : WNOHANG)
            if result == pid { return (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f) }
            if result < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// environ as a dictionary.
    static func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }

    private static func withCString<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
        // Never empty (it ends in NUL), so it has a base address.
        (bytes.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    private static func withCStrings<T>(_ a: [UInt8], _ b: [UInt8], _ body: (UnsafePointer<CChar>, UnsafePointer<CChar>) -> T) -> T {
        withCString(a) { a in withCString(b) { b in body(a, b) } }
    }
}
