import ArgumentParser
import Foundation
import Glibc
import NpfsClient
import PipeCore

/// `npfs-soak`: many clients on one npfs mount for a while, killed and restarted at
/// random, then a check that nothing was lost, torn, interleaved or duplicated, that the
/// daemon lived through it, and that its memory fell back.
@main
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "npfs-soak",
        abstract: "Soak an npfs mount: concurrent writers, readers and churn, random SIGKILL and SIGINT, then check every byte.",
        subcommands: [Run.self, WriterRole.self, ReaderRole.self, ChurnRole.self],
        defaultSubcommand: Run.self
    )
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a soak (the default).")

    @Option(help: "Seconds to run.") var duration: Double = 60
    @Option(help: "Pipes with one writer and one reader each.") var pairs: Int = 64
    @Option(help: "Writers sharing one more pipe (with one reader).") var sharedWriters: Int = 8
    @Option(help: "Processes opening, closing, listing and reconfiguring throwaway pipes.") var churners: Int = 4
    @Option(help: "Milliseconds between random kills.") var killEvery: Int = 100
    @Option(help: "Seed of the random choices.") var seed: UInt64 = 1
    @Option(help: "The npfs binary (default: next to this one).") var npfs: String?

    func run() throws {
        let binary = npfs ?? (URL(fileURLWithPath: Spawn.executablePath ?? "").deletingLastPathComponent().appendingPathComponent("npfs").path)
        let soak = try Supervisor(npfs: binary, self)
        let verdict = soak.run()
        throw ExitCode(verdict ? 0 : 1)
    }
}

struct WriterRole: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "writer", shouldDisplay: false)
    @Argument var pipe: String
    @Argument var slot: UInt32
    @Argument var incarnation: UInt32
    @Argument var status: String
    @Argument var seed: UInt64
    @Argument var log: String
    func run() throws {
        throw ExitCode(runWriter(pipe: pipe, slot: slot, incarnation: incarnation, status: status, seed: seed, log: log))
    }
}

struct ReaderRole: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reader", shouldDisplay: false)
    @Argument var pipe: String
    @Argument var firstSlot: UInt32
    @Argument var lastSlot: UInt32
    @Argument var state: String
    @Argument var log: String
    func run() throws {
        throw ExitCode(runReader(pipe: pipe, slots: firstSlot...lastSlot, stateFile: state, log: log))
    }
}

struct ChurnRole: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "churn", shouldDisplay: false)
    @Argument var directory: String
    @Argument var seed: UInt64
    func run() throws { throw ExitCode(runChurn(directory: directory, seed: seed)) }
}
