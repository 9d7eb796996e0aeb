import CFuse3
import Glibc
import Synchronization

/// libfuse's diagnostics. Until the mount is up they are kept, so that a failure is told
/// in one line (`npfs: cannot mount on DIR: fuse: ...`); after that, or with `-d` from
/// the start, they go to standard error as libfuse would print them.
enum FuseLog {
    private static let state = Mutex<(echo: Bool, kept: [String])>((false, []))

    /// Routes libfuse's messages through this type. `echo`: print them at once.
    static func install(echo: Bool) {
        state.withLock { $0 = (echo, []) }
        fuse_set_log_func { _, format, arguments in
            guard let format, let arguments else { return }
            var buffer = [CChar](repeating: 0, count: 1024)
            _ = vsnprintf(&buffer, buffer.count, format, arguments)
            FuseLog.record(String(cString: buffer))
        }
    }

    /// From now on messages go to standard error.
    static func startEchoing() { state.withLock { $0.echo = true } }

    /// The last message kept, on one line, if any.
    static var lastMessage: String? {
        state.withLock { $0.kept.last }?.split(separator: "\n").last.map(String.init)
    }

    private static func record(_ message: String) {
        let echo = state.withLock { state in
            if !state.echo { state.kept = Array((state.kept + [message]).suffix(8)) }
            return state.echo
        }
        if echo { _ = message.withCString { write(STDERR_FILENO, $0, strlen($0)) } }
    }
}
