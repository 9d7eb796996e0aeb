import ArgumentParser

/// `npfs`: a filesystem in which every path is a named pipe.
@main
struct Npfs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "npfs",
        abstract: "A FUSE filesystem in which every path is a named pipe.",
        discussion: """
            `npfs MOUNTPOINT` is `npfs mount MOUNTPOINT`. Then `cat MOUNTPOINT/NAME` waits \
            for a writer and `echo hi > MOUNTPOINT/NAME` feeds it, as with mkfifo(1).
            """,
        subcommands: [MountCommand.self, UnmountCommand.self, StatusCommand.self],
        defaultSubcommand: MountCommand.self
    )
}

/// A failure the user can act on: printed as one line, exit status 1.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
