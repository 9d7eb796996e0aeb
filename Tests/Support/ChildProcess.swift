import Foundation
import Glibc
import NpfsClient

/// A process the test started, stopped only by its PID.
///
/// Started through the client library's `Spawn`, with an empty signal mask and default
/// dispositions: the test runner's threads block most signals, and a child would
/// otherwise inherit that (a `cat` that ignores Ctrl-C, a daemon deaf to SIGTERM).
package final class ChildProcess: @unchecked Sendable {
    package let pid: pid_t
    package let arguments: [String]
    private let outputPath: String
    private var status: Int32?

    /// Starts `arguments` (searched in PATH); stdout and stderr go to one temp file.
    /// `stdin` is a path opened read-only (default /dev/null); `keep` are descriptors the child inherits.
    package init(_ arguments: [String], stdin: String = "/dev/null", environment: [String: String] = [:],
         keep: [Int32] = []) throws {
        self.arguments = arguments
        outputPath = NSTemporaryDirectory() + "npfs-child-\(UUID().uuidString).out"
        var env = Spawn.environment
        env.merge(environment) { $1 }
        do {
            pid = try Spawn.start(Spawn.Request(arguments, stdin: stdin, output: outputPath, keep: keep, environment: env))
        } catch {
            throw TestFailure("cannot start \(arguments): \(error)")
        }
    }

    deinit {
        if status == nil { _ = signal(SIGKILL); _ = wait(timeout: 2) }
        unlink(outputPath)
    }

    /// Exit code, or 128 + signal; nil if still running after `timeout` seconds.
    @discardableResult
    package func wait(timeout: Double) -> Int32? {
        if let status { return status }
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let code = Spawn.exitStatus(of: pid, block: false) {
                status = code
                return code
            }
            usleep(2000)
        } while Date() < deadline
        return nil
    }

    package var isRunning: Bool { status == nil && wait(timeout: 0) == nil }

    @discardableResult
    package func signal(_ signal: Int32) -> Bool { status == nil && kill(pid, signal) == 0 }

    /// Everything the child wrote to stdout and stderr so far.
    package var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The kernel's view of the process: its state letter (R, S, D, ...).
    package var state: String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
    }

    /// Runs to completion (or is killed after `timeout` seconds).
    package static func run(_ arguments: [String], timeout: Double = 30, stdin: String = "/dev/null",
                    environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let child = try ChildProcess(arguments, stdin: stdin, environment: environment)
        guard let status = child.wait(timeout: timeout) else {
            child.signal(SIGKILL)
            child.wait(timeout: 5)
            throw TestFailure("\(arguments) did not finish within \(timeout) s; output: \(child.output)")
        }
        return (status, child.output)
    }

    /// `sh -c SCRIPT`.
    package static func shell(_ script: String, timeout: Double = 30, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try run(["/bin/sh", "-c", script], timeout: timeout, environment: environment)
    }
}

package struct TestFailure: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Polls `condition` every few milliseconds until it holds or `timeout` seconds pass.
package func eventually(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if condition() { return true }
        usleep(5000)
    } while Date() < deadline
    return condition()
}

/// A new empty directory under the temp directory, for one test.
package func makeTemporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "npfs-test-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
    return String(cString: made)
}
