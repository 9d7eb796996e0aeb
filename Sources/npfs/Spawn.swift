import Glibc

/// Starting other processes with posix_spawn, with signals at their defaults and unblocked.
enum Spawn {
    /// Starts `npfs ARGUMENTS --ready-fd N MOUNTPOINT` in a new session and waits until it
    /// reports the mount ready (returns 0) or exits (returns its status).
    static func daemon(arguments: [String], mountpoint: String) throws -> Int32 {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CommandError("pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        let argv = ["npfs"] + arguments + ["--ready-fd", String(writeEnd), mountpoint]
        // The executable's own path, not /proc/self/exe: the kernel names the process after
        // it, and `ps`, `top` and the OOM killer should say npfs, not exe.
        let pid = spawn(path: executablePath, argv: argv, newSession: true, stdinFromNull: true)
        close(writeEnd)
        defer { close(readEnd) }
        guard let pid else { throw CommandError("cannot start the npfs daemon: \(String(cString: strerror(errno)))") }
        var byte: UInt8 = 0
        var got: Int
        repeat { got = read(readEnd, &byte, 1) } while got < 0 && errno == EINTR
        if got == 1 { return 0 }
        return wait(pid)
    }

    /// This program's file (the target of /proc/self/exe).
    static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/proc/self/exe" }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs a program from PATH and returns its exit status (127 if it could not start).
    static func run(_ argv: [String]) -> Int32 {
        guard let pid = spawn(path: argv[0], argv: argv, newSession: false, stdinFromNull: false, searchPath: true) else { return 127 }
        return wait(pid)
    }

    private static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status >> 8) & 0xff
        let signal = status & 0x7f
        return signal == 0 ? code : 128 + signal
    }

    private static func spawn(path: String, argv: [String], newSession: Bool, stdinFromNull: Bool,
                              searchPath: Bool = false) -> pid_t? {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        let setsid: Int32 = 0x80   // POSIX_SPAWN_SETSID (glibc, not imported without _GNU_SOURCE)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (newSession ? setsid : 0)))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if stdinFromNull { posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0) }
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let result = searchPath
            ? posix_spawnp(&pid, path, &actions, &attributes, &cArgs, environ)
            : posix_spawn(&pid, path, &actions, &attributes, &cArgs, environ)
        guard result == 0 else { errno = result; return nil }
        return pid
    }
}
