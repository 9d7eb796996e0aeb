import ArgumentParser
import Glibc

/// `npfs`: a filesystem in which every path is a named pipe.
@main
struct Npfs: ParsableCommand {
    /// The version `npfs --version` prints.
    static let version = "0.4.0"

    static let configuration = CommandConfiguration(
        commandName: "npfs",
        abstract: "A FUSE filesystem in which every path is a named pipe.",
        discussion: """
            Every path under an npfs mount is a named pipe. The first open of a name creates \
            its pipe, owned by the opener; later opens share it, the last close frees it, and \
            ls lists the live pipes. By default a pipe behaves as a FIFO, as fifo(7) and pipe(7) \
            describe: an open waits for the other end, a read waits for data and returns end of \
            file once every writer has closed, a write waits for room and fails EPIPE once every \
            reader has closed, and O_NONBLOCK gives EAGAIN and ENXIO instead of waiting. Per mount \
            (mount -o) and per live pipe (npfs set, or setfattr on user.npfs attributes) a pipe \
            can be a ring that never waits and drops or overwrites what does not fit, frame each \
            write as one message, give every reader every byte (broadcast), and change its \
            capacity and open timeout. npfs status shows the live pipes, their settings, figures \
            and clients. npfs MOUNTPOINT is npfs mount MOUNTPOINT.
            """,
        version: "npfs \(version)",
        subcommands: [MountCommand.self, UnmountCommand.self, StatusCommand.self, SetCommand.self, GetCommand.self, PeekCommand.self,
                      ManualCommand.self],
        defaultSubcommand: MountCommand.self
    )

    /// Every failure is one line on standard error, `npfs: ...`, and a non-zero exit;
    /// help and the version print as usual.
    static func main() {
        do {
            var command = try parseAsRoot(Self.splittingWatchValue(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch {
            let code = exitCode(for: error)
            let message = self.message(for: error)
            if code == .success || message.isEmpty { exit(withError: error) }
            let line = message.split(separator: "\n").first.map(String.init) ?? message
            let text = "npfs: " + (line.hasPrefix("Error: ") ? String(line.dropFirst(7)) : line) + "\n"
            _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
            Glibc.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    /// `--watch=SECONDS` as `--watch SECONDS` (a flag takes no `=value` in swift-argument-parser).
    static func splittingWatchValue(_ arguments: [String]) -> [String] {
        arguments.flatMap { argument in
            argument.hasPrefix("--watch=") ? ["--watch", String(argument.dropFirst("--watch=".count))] : [argument]
        }
    }

    /// The names the command line knows, aliases included, for catching a mistyped one.
    static var commandNames: [String] {
        configuration.subcommands.flatMap { [$0.configuration.commandName ?? ""] + $0.configuration.aliases }
    }
}

/// A failure the user can act on: printed as one line, exit status 1.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The number of single-character edits between two words (Levenshtein distance).
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i]
        for j in b.indices {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (a[i - 1] == b[j] ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
