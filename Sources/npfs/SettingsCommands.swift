import ArgumentParser
import Glibc
import NpfsClient
import PipeCore
import SystemPackage

/// `npfs set PIPE KEY=VALUE...`: changes a live pipe's settings, for its owner or root,
/// also while a writer waits in it, and for names of any length.
struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Change a live pipe's settings: capacity, mode, overflow, framing, delivery, open_timeout.",
        discussion: """
            Example: npfs set /mnt/example/HELLO capacity=1M mode=ring. Changes apply in order \
            and at once; the first that fails stops the rest. Only the pipe's owner and root \
            may change it.
            """
    )

    @Argument(help: ArgumentHelp("The pipe: MOUNTPOINT/NAME, or NAME in the current directory.", valueName: "PIPE"),
              completion: Completions.pipes)
    var pipe: String

    @Argument(help: ArgumentHelp("Settings to change.", valueName: "KEY=VALUE"), completion: Completions.settings)
    var changes: [String] = []

    func validate() throws {
        guard !changes.isEmpty else { throw CommandError("give at least one KEY=VALUE (e.g. capacity=1M)") }
        _ = try parsedChanges()
    }

    func run() throws {
        let target = try PipeTarget(pipe)
        let changes = try parsedChanges()
        do {
            try target.mount.set(target.name, changes)
        } catch .resourceBusy {
            // Which change was busy is not said: give the reasons of those asked for.
            let reasons = changes.compactMap { $0.0.busyReason }
            throw CommandError("\(target.display): busy: " + Array(Set(reasons)).sorted().joined(separator: "; or "))
        } catch {
            throw CommandError(target.explain(error, changing: true))
        }
    }

    private func parsedChanges() throws -> [(PipeAttribute, String)] {
        try changes.map { change in
            let parts = change.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let settable = PipeAttribute.allCases.filter(\.isSettable).map(\.rawValue).joined(separator: ", ")
            guard parts.count == 2, let attribute = PipeAttribute(rawValue: String(parts[0])), attribute.isSettable else {
                throw CommandError("'\(change)' is not KEY=VALUE with a setting (settable: \(settable))")
            }
            do { _ = try attribute.setting(from: String(parts[1])) } catch {
                throw CommandError("bad \(attribute.rawValue) '\(parts[1])': give \(attribute.allowedValues)")
            }
            return (attribute, String(parts[1]))
        }
    }
}

/// `npfs get PIPE [KEY...]`: a live pipe's settings and figures. One key prints its value
/// alone; none or several print `KEY=VALUE` lines.
struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show a live pipe's settings and figures.",
        discussion: "Example: npfs get /mnt/example/HELLO buffered prints the bytes waiting to be read."
    )

    @Argument(help: ArgumentHelp("The pipe: MOUNTPOINT/NAME, or NAME in the current directory.", valueName: "PIPE"),
              completion: Completions.pipes)
    var pipe: String

    @Argument(help: ArgumentHelp("What to show (default: everything).", valueName: "KEY"), completion: Completions.keys)
    var keys: [String] = []

    func validate() throws { _ = try attributes() }

    func run() throws {
        let target = try PipeTarget(pipe)
        let wanted = try attributes()
        for attribute in wanted {
            let value: String
            do { value = try target.mount.attribute(attribute, of: target.name) } catch {
                throw CommandError(target.explain(error, changing: false))
            }
            print(wanted.count == 1 && !keys.isEmpty ? value : "\(attribute.rawValue)=\(value)")
        }
    }

    private func attributes() throws -> [PipeAttribute] {
        guard !keys.isEmpty else { return PipeAttribute.allCases }
        return try keys.map { key in
            guard let attribute = PipeAttribute(rawValue: key) else {
                throw CommandError("unknown key '\(key)' (keys: \(PipeAttribute.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return attribute
        }
    }
}

/// `npfs peek PIPE [--bytes N]`: the oldest bytes buffered in a live pipe, as they are,
/// without taking them.
struct PeekCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peek",
        abstract: "Print the oldest bytes buffered in a live pipe without reading them.",
        discussion: """
            Prints up to --bytes (at most 4096) of what the next read would return, as they are; \
            in message framing, of the oldest message. Needs read permission on the pipe.
            """
    )

    @Argument(help: ArgumentHelp("The pipe: MOUNTPOINT/NAME, or NAME in the current directory.", valueName: "PIPE"),
              completion: Completions.pipes)
    var pipe: String

    @Option(help: ArgumentHelp("The most bytes to print, 1 to 4096.", valueName: "N"))
    var bytes = PipeAttribute.peekLimit

    func validate() throws {
        guard (1...PipeAttribute.peekLimit).contains(bytes) else {
            throw CommandError("--bytes must be from 1 to \(PipeAttribute.peekLimit), not \(bytes)")
        }
    }

    func run() throws {
        let target = try PipeTarget(pipe)
        let data: [UInt8]
        do { data = try target.mount.peek(target.name, bytes: bytes) } catch {
            throw CommandError(target.explain(error, changing: false))
        }
        do { try StandardOutput.write(data) } catch { throw CommandError("cannot write to standard output: \(error)") }
    }
}

/// A pipe named on the command line: the mount it is under and its name's bytes.
struct PipeTarget {
    let mount: NpfsMount
    let name: [UInt8]
    let display: String

    init(_ argument: String) throws {
        let bytes = rawArgument(argument)
        guard !bytes.isEmpty, bytes.last != UInt8(ascii: "/") else {
            throw CommandError("name the pipe as MOUNTPOINT/NAME, not '\(argument)'")
        }
        // A bare NAME is a pipe in the current directory.
        let slash = bytes.lastIndex(of: UInt8(ascii: "/"))
        name = Array(bytes[(slash.map { $0 + 1 } ?? 0)...])
        let directory = slash.map { $0 == 0 ? "/" : String(decoding: bytes[..<$0], as: UTF8.self) } ?? "."
        mount = try NpfsMount.checked(absolutePath(directory))
        display = PipeNameText.display(bytes)
    }

    /// What an errno from changing or reading the pipe means, in one line.
    func explain(_ error: Errno, changing: Bool) -> String {
        switch error {
        case .noSuchFileOrDirectory: "\(display) is not a live pipe (nothing has it open)"
        case .notPermitted where changing: "\(display): not permitted (only its owner or root may change it, only root beyond max_capacity)"
        case .permissionDenied: "\(display): permission denied"
        case .invalidArgument: "\(display): invalid value (see npfs set --help and the README)"
        case .resourceBusy: "\(display): busy (a capacity below what is buffered or a waiting message, or framing of a non-empty pipe)"
        case .noSpace: "\(display): no space: the mount's memory limits (max_memory, user_max_memory) do not allow that capacity"
        case .fileNameTooLong: "\(display): the name is longer than 255 bytes"
        default: "\(display): \(error)"
        }
    }
}

/// The bytes of a command-line argument as the shell passed them: Swift decodes
/// arguments as UTF-8 and repairs invalid bytes, which would name another pipe.
func rawArgument(_ parsed: String) -> [UInt8] {
    for index in 0..<Int(CommandLine.argc) {
        guard let argument = CommandLine.unsafeArgv[index] else { continue }
        let bytes = Array(UnsafeRawBufferPointer(start: argument, count: strlen(argument)))
        if String(decoding: bytes, as: UTF8.self) == parsed { return bytes }
    }
    return Array(parsed.utf8)
}
