import ArgumentParser
import Foundation
import NpfsClient
import PipeCore
import SystemPackage

/// `npfs status MOUNTPOINT [--json]`: every live pipe's settings and figures.
///
/// Reads the directory and each pipe's `user.npfs.*` attributes: it opens no pipe, so it
/// creates, holds and disturbs none. Names are bytes; those that are not printable UTF-8
/// show their other bytes as `\xNN` (and a backslash as `\\`), in both forms.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the live pipes of an npfs mount: settings, readers, writers, bytes."
    )

    @Argument(help: "The mount point.")
    var mountpoint: String

    @Flag(help: "Print JSON (an array of objects) for scripts.")
    var json = false

    /// `--json`: the mount's usage against its limits, and every live pipe.
    struct Report: Codable {
        var usage: [String: Int]
        var pipes: [PipeStatus]
    }

    struct PipeStatus: Codable {
        var name: String
        var mode: String
        var overflow: String
        var framing: String
        var capacity: Int
        var buffered: Int
        var readers: Int
        var writers: Int
        var bytesWritten: Int
        var bytesRead: Int
        var dropped: Int

        enum CodingKeys: String, CodingKey {
            case name, mode, overflow, framing, capacity, buffered, readers, writers, dropped
            case bytesWritten = "bytes_written", bytesRead = "bytes_read"
        }
    }

    func run() throws {
        let mount = try NpfsMount.checked(absolutePath(mountpoint))
        let names: [[UInt8]]
        do { names = try mount.livePipes() } catch { throw CommandError("cannot list \(mount.path): \(error)") }
        // A pipe closed between the listing and its attributes is simply left out.
        let pipes = names.compactMap { try? read(mount, $0) }
        let usage = (try? mount.usage()) ?? [:]
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(Report(usage: usage, pipes: pipes)), as: UTF8.self))
        } else {
            print(summary(usage))
            print(table(pipes), terminator: "")
        }
    }

    private func read(_ mount: NpfsMount, _ name: [UInt8]) throws -> PipeStatus {
        func value(_ attribute: PipeAttribute) throws -> String { try mount.attribute(attribute, of: name) }
        func number(_ attribute: PipeAttribute) throws -> Int { Int(try value(attribute)) ?? 0 }
        return PipeStatus(name: PipeNameText.display(name), mode: try value(.mode), overflow: try value(.overflow),
                          framing: try value(.framing), capacity: try number(.capacity), buffered: try number(.buffered),
                          readers: try number(.readers), writers: try number(.writers),
                          bytesWritten: try number(.bytesWritten), bytesRead: try number(.bytesRead),
                          dropped: try number(.dropped))
    }

    /// One line of the mount's usage against each limit.
    private func summary(_ usage: [String: Int]) -> String {
        func pair(_ used: String, _ limit: String, size: Bool) -> String {
            let (a, b) = (usage[used] ?? 0, usage[limit] ?? 0)
            return size ? "\(formatSize(a))/\(formatSize(b))" : "\(a)/\(b)"
        }
        return "pipes \(pair("pipes", "max_pipes", size: false)), memory \(pair("memory", "max_memory", size: true))"
            + " (yours \(pair("user_memory", "user_max_memory", size: true))), waiting writes \(pair("waiting", "max_waiting", size: true)),"
            + " idle names \(pair("idle_names", "max_idle_names", size: false)), buffers \(formatSize(usage["allocated"] ?? 0))"
    }

    /// Columns aligned for people: text left, numbers right.
    private func table(_ pipes: [PipeStatus]) -> String {
        let header = ["NAME", "MODE", "FRAMING", "READERS", "WRITERS", "BUFFERED/CAPACITY", "BYTES IN", "BYTES OUT", "DROPPED"]
        let rows = pipes.map { pipe in
            [pipe.name, pipe.mode == "ring" ? "ring/\(pipe.overflow)" : pipe.mode, pipe.framing,
             String(pipe.readers), String(pipe.writers), "\(pipe.buffered)/\(pipe.capacity)",
             String(pipe.bytesWritten), String(pipe.bytesRead), String(pipe.dropped)]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        let leftAligned: Set<Int> = [0, 1, 2]
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return leftAligned.contains(column) ? cell + pad : pad + cell
            }.joined(separator: "  ").trimmingTrailingSpaces() + "\n"
        }
        return ([header] + rows).map(line).joined()
    }
}

extension NpfsMount {
    /// The mount at `path`, after checking that npfs serves it (one-line error otherwise).
    static func checked(_ path: String) throws -> NpfsMount {
        let mount = NpfsMount(path: path)
        do {
            _ = try mount.daemonProcess()
        } catch {
            throw CommandError("\(path) is not an npfs mount: \(error)")
        }
        return mount
    }
}

/// Bytes as people read them: 65536 is 64K, 1073741824 is 1G; other counts stay exact.
func formatSize(_ bytes: Int) -> String {
    for (unit, size) in [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] where bytes >= size && bytes % size == 0 {
        return "\(bytes / size)\(unit)"
    }
    return String(bytes)
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}
