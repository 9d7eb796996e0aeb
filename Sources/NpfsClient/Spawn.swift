import SystemPackage

/// Starting other processes with signals unblocked and at their defaults: a test runner's
/// threads block most signals, and a child would otherwise inherit that (a `cat` deaf to
/// Ctrl-C, a daemon deaf to SIGTERM). Shared by the `npfs` command and the tests.
package enum Spawn {
    package struct Request: Sendable {
        /// argv; `arguments[0]` is looked up in PATH unless `executable` is given.
        package var arguments: [String]
        package var executable: String?
        /// A file to open as standard input, or nil to inherit it.
        package var stdin: String?
        /// A file for standard output and standard error together, or nil to inherit them.
        package var output: String?
        /// Descriptors the child keeps (by number), whatever their close-on-exec flag.
        package var keep: [Int32]
        /// The child's whole environment, or nil for this process's.
        package var environment: [String: String]?
        /// Start the child in a session of its own (a daemon).
        package var newSession: Bool

        package init(_ arguments: [String], executable: String? = nil, stdin: String? = nil, output: String? = nil,
                    keep: [Int32] = [], environment: [String: String]? = nil, newSession: Bool = false) {
            self.arguments = arguments
            self.executable = executable
            self.stdin = stdin
            self.output = output
            self.keep = keep
            self.environment = environment
            self.newSession = newSession
        }
    }

    /// Starts a process; returns its pid.
    package static func start(_ request: Request) throws(Errno) -> Int32 { try Syscalls.spawn(request) }

    /// Runs a process to its end; returns its exit code, or 128 + the signal that ended it
    /// (127 if it could not start).
    package static func run(_ request: Request) -> Int32 {
        guard let pid = try? start(request) else { return 127 }
        return exitStatus(of: pid, block: true) ?? 127
    }

    /// A child's exit code, or 128 + its signal; nil if it still runs and `block` is false.
    package static func exitStatus(of pid: Int32, block: Bool) -> Int32? { Syscalls.exitStatus(of: pid, block: block) }

    /// This program's own file (for starting the daemon under its real name, not `exe`).
    package static var executablePath: String? { Syscalls.executablePath() }

    /// This process's environment, to change and hand to a child.
    package static var environment: [String: String] { Syscalls.currentEnvironment() }
}
