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
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(pipes), as: UTF8.self))
        } else {
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

extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}
