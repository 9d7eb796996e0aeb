import Foundation
import Glibc

/// Unprivileged users (and optionally a group) made for one test with useradd, and always
/// removed after it with userdel: tests of owners and modes across real users. Needs
/// root, as CI runs; commands run as a user through `setpriv` with that user's groups.
final class TestUsers: @unchecked Sendable {
    let names: [String]
    /// A group the test can put users in (`addToGroup`), if asked for.
    let group: String?
    /// The npfs under test, copied where these users can run it: the checkout may sit in
    /// a directory only root can enter (a clone in `mktemp -d`).
    let npfs: String
    private let binaryDirectory: String

    static var canCreateUsers: Bool { geteuid() == 0 }

    private init(count: Int, withGroup: Bool) throws {
        let stem = "npfs\(getpid() % 100_000)\(Int.random(in: 100...999))"
        var made: [String] = []
        var madeGroup: String?
        do {
            if withGroup {
                let name = stem + "g"
                try TestUsers.must(["groupadd", name])
                madeGroup = name
            }
            for index in 0..<count {
                let name = stem + String(UnicodeScalar(UInt8(ascii: "a") + UInt8(index)))
                try TestUsers.must(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name])
                made.append(name)
            }
        } catch {
            TestUsers.remove(made, group: madeGroup)
            throw error
        }
        names = made
        group = madeGroup
        do {
            binaryDirectory = try makeTemporaryDirectory()
            chmod(binaryDirectory, 0o755)
            npfs = binaryDirectory + "/npfs"
            try FileManager.default.copyItem(atPath: TestMount.binary, toPath: npfs)
        } catch {
            TestUsers.remove(made, group: madeGroup)
            throw error
        }
    }

    /// Runs `body` with `count` new users (and a new group), always removing them after.
    static func with<T>(count: Int, group: Bool = false, _ body: (TestUsers) throws -> T) throws -> T {
        let users = try TestUsers(count: count, withGroup: group)
        defer {
            TestUsers.remove(users.names, group: users.group)
            try? FileManager.default.removeItem(atPath: users.binaryDirectory)
        }
        return try body(users)
    }

    func uid(_ user: String) throws -> UInt32 {
        guard let entry = getpwnam(user) else { throw TestFailure("no user \(user)") }
        return entry.pointee.pw_uid
    }

    func addToGroup(_ user: String) throws {
        guard let group else { throw TestFailure("no group was made") }
        try TestUsers.must(["usermod", "--append", "--groups", group, user])
    }

    /// `sh -c SCRIPT` as `user`, with its own groups; waits at most `timeout` seconds.
    func run(as user: String, _ script: String, timeout: Double = 10) throws -> (status: Int32, output: String) {
        try ChildProcess.run(command(as: user, script), timeout: timeout)
    }

    /// `sh -c SCRIPT` as `user`, started and left running.
    func start(as user: String, _ script: String) throws -> ChildProcess {
        try ChildProcess(command(as: user, script))
    }

    private func command(as user: String, _ script: String) -> [String] {
        ["setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--", "/bin/sh", "-c", script]
    }

    private static func must(_ arguments: [String]) throws {
        let result = try ChildProcess.run(arguments, timeout: 30)
        guard result.status == 0 else { throw TestFailure("\(arguments.joined(separator: " ")): \(result.output)") }
    }

    private static func remove(_ users: [String], group: String?) {
        for user in users { _ = try? ChildProcess.run(["userdel", user], timeout: 30) }
        if let group { _ = try? ChildProcess.run(["groupdel", group], timeout: 30) }
    }
}
