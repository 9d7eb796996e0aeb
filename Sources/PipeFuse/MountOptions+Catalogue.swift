import PipeCore

/// Every `-o` option, described once for `npfs mount --help`, the man page and the shell
/// completions (the parser is `MountOptions.parse`; a test checks the two agree).
extension MountOptions {
    package struct Documented: Sendable {
        /// The option's name, as typed before any `=`.
        package let name: String
        /// What follows `=` (e.g. `SIZE`), or nil for an option without a value.
        package let value: String?
        /// What it does, one sentence or two, plain text.
        package let summary: String
        /// The values to offer when completing, if they can be listed.
        package let choices: [String]

        init(_ name: String, _ value: String? = nil, _ summary: String, choices: [String] = []) {
            (self.name, self.value, self.summary, self.choices) = (name, value, summary, choices)
        }

        /// As typed: `name`, or `name=VALUE`.
        package var synopsis: String { value.map { "\(name)=\($0)" } ?? name }
    }

    private static func cases<T: CaseIterable & RawRepresentable>(_: T.Type) -> [String] where T.RawValue == String {
        T.allCases.map(\.rawValue)
    }

    /// npfs's own options, then the standard FUSE and mount options passed to libfuse.
    package static let catalogue: [Documented] = [
        Documented("capacity", "SIZE", "Bytes each pipe buffers: a number with an optional K, M or G (binary), from 4K to 1G; default 64K, as Linux.",
                   choices: ["4K", "64K", "1M", "16M"]),
        Documented("mode", cases(PipeConfig.Mode.self).joined(separator: "|"),
                   "fifo (default): Linux FIFO behaviour, where opens, reads and writes wait. ring: nothing ever waits; a write that does not fit is dropped or overwrites, and counted.",
                   choices: cases(PipeConfig.Mode.self)),
        Documented("overflow", cases(PipeConfig.Overflow.self).joined(separator: "|"),
                   "In ring mode, what a write that does not fit loses: the new bytes (drop, default) or the oldest (overwrite).",
                   choices: cases(PipeConfig.Overflow.self)),
        Documented("framing", cases(PipeConfig.Framing.self).joined(separator: "|"),
                   "stream (default): a byte stream. message: each write is one message, each read returns at most one.",
                   choices: cases(PipeConfig.Framing.self)),
        Documented("delivery", cases(PipeConfig.Delivery.self).joined(separator: "|"),
                   "shared (default): readers compete for the bytes, as on a FIFO. broadcast: every reader gets every byte written after its open.",
                   choices: cases(PipeConfig.Delivery.self)),
        Documented("open_timeout", "SECONDS",
                   "An open waiting for its partner fails ETIMEDOUT after this many seconds, decimal; 0 (default) waits for ever.",
                   choices: ["0", "1", "2.5", "10"]),
        Documented("persist", nil,
                   "New pipes outlive their last close, with their bytes, until rm NAME: until unmount on a local mount; in a cluster, across every daemon and server restart."),
        Documented("ignore_case", nil, "Match names with ASCII letters folded; ls shows the spelling of the open that created a pipe."),
        Documented("pipe_mode", "OCTAL", "A new pipe's permission bits, default 0666; its owner is the user who created it.",
                   choices: ["0600", "0620", "0660", "0666"]),
        Documented("protected_pipes", "0|1|2",
                   "An O_CREAT open (the shell's > and >>) of another user's live pipe: allowed (0), refused unless the pipe is shared with the caller through its group (1), refused (2). Default 1 with allow_other, else 0.",
                   choices: ["0", "1", "2"]),
        Documented("max_pipes", "N", "Live pipes in all, the last 64th kept for root; default 16384.", choices: ["1024", "16384"]),
        Documented("user_max_pipes", "N", "Live pipes one user may own; default a quarter of max_pipes.", choices: ["256", "4096"]),
        Documented("max_memory", "SIZE", "Bytes all pipes' buffers may reserve; default an eighth of the machine's memory, 16M to 1G.", choices: ["256M", "1G"]),
        Documented("user_max_memory", "SIZE", "Bytes one user's pipes and opens may reserve; default a quarter of max_memory.", choices: ["64M", "256M"]),
        Documented("max_capacity", "SIZE", "The largest capacity a pipe's owner may set (default 1M); root may set more.", choices: ["1M", "16M", "1G"]),
        Documented("max_idle_names", "N", "Names the kernel may keep looked up with no live pipe (default 65536) before it is asked to forget them.",
                   choices: ["1024", "65536"]),
        Documented("threads", "N", "Threads serving requests, 1 to \(maximumThreads); default one per CPU the daemon may use, 2 to 8.",
                   choices: ["1", "2", "4", "8"]),
        Documented("io_uring", "auto|on|off",
                   "Requests over io_uring, a queue per CPU, when the kernel offers it (auto, the default; Linux 6.14+ with enable_uring, see ./mount.sh --io-uring); off: always over /dev/fuse; on: refuse to mount without it.",
                   choices: Transport.Mode.allCases.map(\.rawValue)),
        Documented("io_uring_depth", "N",
                   "Entries each io_uring queue keeps for new requests, \(Transport.depths.lowerBound) to \(Transport.depths.upperBound) (default \(Transport.defaultDepth)); a request that waits holds one more. Each maps a buffer of max_write (1 MiB).",
                   choices: ["4", "8", "32"]),
        Documented("io_uring_spin", "MICROSECONDS",
                   "How long an io_uring queue's thread keeps looking for work before it sleeps, while a request of its CPU waits for an answer from another (default \(Transport.defaultSpin), \(Transport.spins.lowerBound) to \(Transport.spins.upperBound); 0: sleep at once). Spares the wake-up of an idle CPU at the price of that CPU time.",
                   choices: ["0", "50", "200"]),
        Documented("max_read", "BYTES", "The largest read request the kernel sends; a larger read takes several.", choices: ["131072", "1048576"]),
        Documented("cluster", "URL",
                   "Share pipes with every mount of the same PostgreSQL database and space, on any host: a postgres:// or postgresql:// URL, or libpq's key=value words such as service=NAME (write a comma inside it as \\,).",
                   choices: ["postgresql://"]),
        Documented("cluster_space", "NAME", "Which set of pipe names of the cluster this mount shares (default: default).", choices: ["default"]),
        Documented("host", "NAME", "This mount's name in the cluster's status and client lists (default: the machine's hostname)."),
        Documented("cluster_schema", "NAME", "The PostgreSQL schema of npfs's tables (default: npfs), made on first mount."),
        Documented("cluster_timeout", "SECONDS", "How long an operation waits for PostgreSQL before it fails EIO, and a mount before it gives up (default 5).",
                   choices: ["5", "30"]),
        Documented("cluster_passfile", "PATH", "A password file in .pgpass format, mode 0600 (for fstab, where PGPASSFILE cannot be set)."),
        Documented("allow_other", nil, "Let other users reach the mount (for a mount by a user other than root, user_allow_other must be in /etc/fuse.conf)."),
        Documented("allow_root", nil, "Let root reach the mount."),
        Documented("auto_unmount", nil, "Unmount when the daemon dies."),
        Documented("default_permissions", nil, "The kernel checks permission bits; npfs always adds it."),
        Documented("fsname", "NAME", "The source shown in the mount table; default npfs."),
        Documented("subtype", "NAME", "The mount table shows the type fuse.NAME; default npfs."),
    ] + passedThrough.subtracting(["allow_other", "allow_root", "auto_unmount", "default_permissions"]).sorted().map {
        Documented($0, nil, "Standard mount flags, passed to the kernel.")
    }
}
