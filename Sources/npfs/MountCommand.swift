import ArgumentParser
import Glibc
import NpfsClient
import PipeCore
import PipeFuse

/// `npfs mount [-f] [-d] [-o OPT[,OPT...]] MOUNTPOINT`
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount npfs on MOUNTPOINT (an existing, empty directory).",
        discussion: "Options for -o, described under OPTIONS in npfs(1): "
            + MountOptions.catalogue.map(\.synopsis).joined(separator: ", ")
            + "; fstab words such as defaults, noauto and nofail are accepted and ignored."
    )

    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground until unmounted or signalled.")
    var foreground = false

    @Flag(name: [.customShort("d"), .long], help: "Log every FUSE request to standard error (implies -f).")
    var debug = false

    @Option(name: .customShort("o"), help: ArgumentHelp("Mount options, comma-separated (see OPTIONS in npfs(1)).", valueName: "OPT[,OPT...]"),
            completion: Completions.mountOptions)
    var options: [String] = []

    @Argument(help: ArgumentHelp("Where to mount: an existing, empty directory. mount(8) and fstab pass a source first (such as none), which is ignored.",
                                 valueName: "[SOURCE] MOUNTPOINT"), completion: .directory)
    var paths: [String] = []

    /// The last path; a first one is the source mount(8) passes for fstab entries.
    var mountpoint: String { paths.last ?? "" }

    @Option(name: .customLong("ready-fd"), help: .hidden)
    var readyFD: Int32?

    @Option(name: .customLong("watchdog-fd"), help: .hidden)
    var watchdogFD: Int32?

    func validate() throws {
        guard (1...2).contains(paths.count) else {
            throw CommandError(paths.isEmpty ? "missing MOUNTPOINT (see npfs mount --help)" : "too many arguments: \(paths.joined(separator: " "))")
        }
        guard !mountpoint.isEmpty else { throw CommandError("the mount point is an empty string") }
        if paths.count == 2, let command = Npfs.commandNames.first(where: { editDistance($0, paths[0]) <= 2 }),
           paths[0].count >= 3, access(paths[0], F_OK) != 0 {
            // `npfs unmout DIR` would otherwise mount DIR with "unmout" as the fstab source.
            throw CommandError("unknown command '\(paths[0])' (did you mean 'npfs \(command)'?)")
        }
        let parsed = try parsedOptions()
        _ = try parsed.cluster?.settings()
        try checkMountpoint(absolutePath(mountpoint))
    }

    func run() throws {
        ClusterSecret.hideInCommandLine()
        let parsed = try parsedOptions()
        let path = absolutePath(mountpoint)
        if foreground || debug {
            let status = try Daemon(path: path, options: parsed, debug: debug,
                                    readyFD: readyFD, watchdogFD: watchdogFD).serve()
            throw ExitCode(status)
        }
        try startInBackground()
    }

    private func parsedOptions() throws -> MountOptions {
        do { return try MountOptions.parse(options) } catch { throw CommandError(error.description) }
    }

    /// Re-runs this command with `-f` in a new session, and returns once it has mounted
    /// (or with its failure). A fresh process, not fork(), since threads may exist.
    private func startInBackground() throws {
        var arguments = ["mount", "-f"]
        // A password in the cluster's connection string reaches the daemon through its
        // environment, never its command line.
        let secret = ClusterSecret.redacting(options)
        for option in secret?.options ?? options { arguments += ["-o", option] }
        if let watchdogFD { arguments += ["--watchdog-fd", String(watchdogFD)] }
        let status = try Spawn.daemon(arguments: arguments, mountpoint: mountpoint,
                                      environment: secret.map { [MountOptions.ClusterOptions.environmentKey: $0.connection] } ?? [:])
        if status != 0 { throw ExitCode(status) }
    }
}

/// Refuses a mount point that is missing, not a directory, in use, or not empty.
func checkMountpoint(_ path: String) throws {
    if let entry = MountTable.current().entry(at: path) {
        // Opening the directory reaches the daemon (a stat may be answered from the cache).
        let directory = opendir(path)
        if directory == nil && errno == ENOTCONN {
            throw CommandError("\(path) is a stale mount (its daemon died); clear it with: npfs unmount \(path)")
        }
        if let directory { closedir(directory) }
        throw CommandError("\(path) is already a mount point (\(entry.type))")
    }
    var info = stat()
    guard stat(path, &info) == 0 else {
        throw CommandError("mount point \(path): \(String(cString: strerror(errno)))")
    }
    guard info.st_mode & S_IFMT == S_IFDIR else { throw CommandError("mount point \(path) is not a directory") }
    let entries: [DirectoryEntry]
    do { entries = try DirectoryEntry.list(path) } catch {
        throw CommandError("mount point \(path): \(String(cString: strerror(error.rawValue)))")
    }
    if !entries.isEmpty { throw CommandError("mount point \(path) is not empty") }
}
