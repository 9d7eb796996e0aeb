import Glibc
import PipeCore

/// The `-o` options of `npfs mount`: npfs's own, and standard FUSE options passed through.
package struct MountOptions: Sendable, Equatable {
    package struct Invalid: Error, CustomStringConvertible, Equatable {
        package let description: String
    }

    /// Standard FUSE and mount options handed to libfuse as they are.
    package static let passedThrough: Set<String> = [
        "allow_other", "allow_root", "auto_unmount", "default_permissions",
        "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
        "atime", "noatime", "sync", "async", "dirsync",
    ]
    /// Pass-through options that take a value (`name=value`).
    package static let passedThroughWithValue: Set<String> = ["fsname", "subtype"]

    /// Every pipe's settings when it is created.
    package var pipe: PipeConfig
    /// Match names with ASCII letters folded (`ignore_case`).
    package var ignoreCase: Bool
    /// A new pipe's permission bits (`pipe_mode`, octal).
    package var pipeMode: UInt32
    /// The largest read request the kernel sends (`max_read`), 0 for its default.
    package var maxRead: UInt32 = 0
    /// Threads serving requests (`threads`), or nil for the daemon's default.
    package var threads: Int?
    /// The most `threads` may be.
    package static let maximumThreads = 64
    /// Whether requests travel over io_uring when the kernel offers it (`io_uring`).
    package var ioUring: Transport.Mode = .auto
    /// Entries each io_uring queue keeps for new requests (`io_uring_depth`).
    package var ioUringDepth = Transport.defaultDepth
    /// Microseconds a queue's thread polls before it sleeps while a request waits (`io_uring_spin`).
    package var ioUringSpin = Transport.defaultSpin
    /// Who may open another user's live pipe with O_CREAT (`protected_pipes`, see
    /// `PipeProtection`): 1 by default on a mount other users reach (`allow_other`), else 0.
    package var protectedPipes: PipeProtection = .off
    /// `max_pipes`, `user_max_pipes`, `max_memory`, `user_max_memory`, `max_capacity`.
    package var limits = MountLimits.defaults(physicalMemory: MountOptions.physicalMemory)
    /// Options for libfuse, npfs's defaults first.
    package var fuseOptions: [String]
    /// Pipes shared by mounts on several hosts through PostgreSQL (`cluster=` and its
    /// options), or nil for pipes of this mount alone.
    package var cluster: ClusterOptions?

    /// The `cluster_*` options, as given (the daemon's side checks the connection string).
    package struct ClusterOptions: Sendable, Equatable {
        /// libpq's connection string: a postgres:// or postgresql:// URL, or key=value words.
        package var connection: String
        package var space = "default"
        /// This mount's name in the cluster (`host=`); nil for the machine's hostname.
        package var host: String?
        package var schema = "npfs"
        package var timeout = 5.0
        package var passfile: String?
    }

    package init(pipe: PipeConfig, ignoreCase: Bool = false, pipeMode: UInt32 = 0o666, fuseOptions: [String]) {
        self.pipe = pipe
        self.ignoreCase = ignoreCase
        self.pipeMode = pipeMode
        self.fuseOptions = fuseOptions
    }

    /// Parses `-o` arguments, each a comma-separated list.
    package static func parse(_ arguments: [String], physicalMemory: Int = MountOptions.physicalMemory) throws(Invalid) -> MountOptions {
        var pipe = PipeConfig.defaults
        var sizes: [String: Int] = [:]   // the limits given as sizes or counts
        var ignoreCase = false
        var pipeMode: UInt32 = 0o666
        var maxRead: UInt32 = 0
        var threads: Int?
        var ioUring = Transport.Mode.auto
        var ioUringDepth = Transport.defaultDepth
        var ioUringSpin = Transport.defaultSpin
        var protection: PipeProtection?
        var fuse: [String] = []
        var named: Set<String> = []
        var cluster: [String: String] = [:]
        for option in arguments.flatMap(splitOptions) {
            let parts = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count == 2 ? String(parts[1]) : nil
            named.insert(name)
            switch name {
            case "capacity":
                guard let value, let bytes = PipeConfig.parseSize(value) else {
                    throw Invalid(description: "bad capacity '\(value ?? "")': give bytes, optionally with K, M or G (e.g. capacity=64K)")
                }
                guard (PipeConfig.minimumCapacity...PipeConfig.maximumCapacity).contains(bytes) else {
                    throw Invalid(description: "capacity \(value) out of range: from 4K to 1G")
                }
                pipe.capacity = bytes
            case "open_timeout":
                guard let value, let seconds = PipeConfig.parseTimeout(value) else {
                    throw Invalid(description: "bad open_timeout '\(value ?? "")': give seconds, decimal, 0 to wait for ever (e.g. open_timeout=2.5)")
                }
                pipe.openTimeout = seconds
            case "persist":
                guard value == nil else { throw Invalid(description: "persist takes no value") }
                pipe.persist = true
            case "mode":
                pipe.mode = try choice(name, value, PipeConfig.Mode.self)
            case "overflow":
                pipe.overflow = try choice(name, value, PipeConfig.Overflow.self)
            case "framing":
                pipe.framing = try choice(name, value, PipeConfig.Framing.self)
            case "delivery":
                pipe.delivery = try choice(name, value, PipeConfig.Delivery.self)
            case "max_memory", "user_max_memory", "max_capacity":
                guard let value, let bytes = PipeConfig.parseSize(value), bytes >= PipeConfig.minimumCapacity else {
                    throw Invalid(description: "bad \(name) '\(value ?? "")': give bytes, optionally with K, M or G, at least 4K")
                }
                sizes[name] = bytes
            case "protected_pipes":
                guard let value, let level = Int(value).flatMap(PipeProtection.init(rawValue:)) else {
                    throw Invalid(description: "bad protected_pipes '\(value ?? "")': give 0, 1 or 2")
                }
                protection = level
            case "max_pipes", "user_max_pipes", "max_idle_names":
                guard let value, let count = Int(value), count > 0 else {
                    throw Invalid(description: "bad \(name) '\(value ?? "")': give a positive number")
                }
                sizes[name] = count
            case "threads":
                guard let value, let count = Int(value), (1...maximumThreads).contains(count) else {
                    throw Invalid(description: "bad threads '\(value ?? "")': give a number of threads from 1 to \(maximumThreads)")
                }
                threads = count
            case "io_uring":
                ioUring = try choice(name, value, Transport.Mode.self)
            case "io_uring_depth":
                guard let value, let count = Int(value), Transport.depths.contains(count) else {
                    throw Invalid(description: "bad io_uring_depth '\(value ?? "")': give entries per queue from \(Transport.depths.lowerBound) to \(Transport.depths.upperBound)")
                }
                ioUringDepth = count
            case "io_uring_spin":
                guard let value, let microseconds = Int(value), Transport.spins.contains(microseconds) else {
                    throw Invalid(description: "bad io_uring_spin '\(value ?? "")': give microseconds from \(Transport.spins.lowerBound) to \(Transport.spins.upperBound)")
                }
                ioUringSpin = microseconds
            case "pipe_mode":
                guard let value, !value.isEmpty, value.count <= 4, let bits = UInt32(value, radix: 8), bits <= 0o777 else {
                    throw Invalid(description: "bad pipe_mode '\(value ?? "")': give octal permission bits (e.g. pipe_mode=0600)")
                }
                pipeMode = bits
            case "cluster", "cluster_space", "host", "cluster_schema", "cluster_timeout", "cluster_passfile":
                guard let value, !value.isEmpty else { throw Invalid(description: "\(name) needs a value (\(name)=...)") }
                cluster[name] = value
            case "ignore_case" where value == nil:
                ignoreCase = true
            case _ where ignoredMountFlags.contains(name) && value == nil:
                continue
            case _ where passedThrough.contains(name) && value == nil:
                fuse.append(name)
            case "max_read":
                guard let value, let bytes = UInt32(value), bytes > 0 else {
                    throw Invalid(description: "bad max_read '\(value ?? "")': give the largest read request in bytes (e.g. max_read=131072)")
                }
                fuse.append("max_read=\(bytes)")
                maxRead = bytes
            case _ where passedThroughWithValue.contains(name) && !(value ?? "").isEmpty:
                fuse.append(String(option))
            default:
                throw Invalid(description: "unknown mount option '\(option)'")
            }
        }
        var defaults = ["default_permissions"]
        if !named.contains("fsname") { defaults.append("fsname=npfs") }
        if !named.contains("subtype") { defaults.append("subtype=npfs") }
        var options = MountOptions(pipe: pipe, ignoreCase: ignoreCase, pipeMode: pipeMode,
                            fuseOptions: defaults + fuse.filter { $0 != "default_permissions" })
        options.maxRead = maxRead
        options.threads = threads
        options.ioUring = ioUring
        options.ioUringDepth = ioUringDepth
        options.ioUringSpin = ioUringSpin
        options.protectedPipes = protection ?? (named.contains("allow_other") ? .group : .off)
        options.limits = try limits(sizes, capacity: pipe.capacity, physicalMemory: physicalMemory)
        options.cluster = try clusterOptions(cluster)
        return options
    }

    /// The cluster's options, checked as far as they can be without libpq.
    private static func clusterOptions(_ given: [String: String]) throws(Invalid) -> ClusterOptions? {
        guard let connection = given["cluster"] else {
            if let stray = given.keys.sorted().first { throw Invalid(description: "\(stray) needs cluster=postgres://... (a cluster to share pipes through)") }
            return nil
        }
        var options = ClusterOptions(connection: connection)
        for (name, value) in given {
            switch name {
            case "cluster_space", "host":
                guard value.utf8.count <= 63, value.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && $0.value < 127 }) else {
                    throw Invalid(description: "bad \(name) '\(value)': give at most 63 printable ASCII characters, no spaces")
                }
                if name == "host" { options.host = value } else { options.space = value }
            case "cluster_schema":
                options.schema = value
            case "cluster_timeout":
                guard let seconds = Double(value), seconds.isFinite, (0.5...3600).contains(seconds) else {
                    throw Invalid(description: "bad cluster_timeout '\(value)': give seconds from 0.5 to 3600 (e.g. cluster_timeout=5)")
                }
                options.timeout = seconds
            case "cluster_passfile":
                options.passfile = value
            default:
                break
            }
        }
        return options
    }

    /// One `-o` argument's options: split at commas, where `\,` is a comma inside a value
    /// (as in a libpq URL with several hosts) and `\\` a backslash.
    package static func splitOptions(_ argument: String) -> [Substring] {
        guard argument.contains("\\") else { return argument.split(separator: ",", omittingEmptySubsequences: true) }
        var options: [Substring] = []
        var current = ""
        var escaped = false
        for character in argument {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "," {
                if !current.isEmpty { options.append(Substring(current)) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if escaped { current.append("\\") }
        if !current.isEmpty { options.append(Substring(current)) }
        return options
    }

    /// The limits from the options given, the rest defaulted (see `MountLimits.defaults`);
    /// they must leave room for at least one pipe of the mount's capacity.
    private static func limits(_ given: [String: Int], capacity: Int, physicalMemory: Int) throws(Invalid) -> MountLimits {
        var limits = MountLimits.defaults(physicalMemory: physicalMemory)
        if let memory = given["max_memory"] {
            limits.maxMemory = memory
            limits.userMaxMemory = memory / 4
        }
        limits.userMaxMemory = given["user_max_memory"] ?? max(limits.userMaxMemory, min(capacity, limits.maxMemory))
        limits.maxPipes = given["max_pipes"] ?? limits.maxPipes
        limits.userMaxPipes = given["user_max_pipes"] ?? MountLimits.defaultUserMaxPipes(limits.maxPipes)
        guard limits.userMaxPipes <= limits.maxPipes else {
            throw Invalid(description: "user_max_pipes \(limits.userMaxPipes) is above max_pipes \(limits.maxPipes)")
        }
        if let userMemory = given["user_max_memory"], userMemory > limits.maxMemory {
            throw Invalid(description: "user_max_memory \(userMemory) is above max_memory \(limits.maxMemory)")
        }
        limits.maxIdleNames = given["max_idle_names"] ?? limits.maxIdleNames
        if let maxCapacity = given["max_capacity"] {
            guard PipeConfig.validCapacities.contains(maxCapacity) else {
                throw Invalid(description: "max_capacity out of range: from 4K to 1G")
            }
            guard capacity <= maxCapacity else {
                throw Invalid(description: "capacity \(capacity) is above max_capacity \(maxCapacity)")
            }
            limits.maxCapacity = maxCapacity
        } else {
            limits.maxCapacity = max(limits.maxCapacity, capacity)
        }
        for (name, limit) in [("max_memory", limits.maxMemory), ("user_max_memory", limits.userMaxMemory)] where capacity > limit {
            throw Invalid(description: "capacity \(capacity) is above \(name) \(limit): no pipe would fit")
        }
        return limits
    }

    /// The machine's memory in bytes (for the default limits).
    package static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return 8 << 30 }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        return overflow ? .max : bytes
    }

    /// fstab words that mean nothing to npfs but may reach it through mount.fuse3, and
    /// atime flags libfuse does not take (relatime is the kernel's default anyway).
    package static let ignoredMountFlags: Set<String> = [
        "defaults", "auto", "noauto", "nofail", "user", "users", "nouser", "_netdev",
        "relatime", "norelatime", "strictatime", "lazytime", "nolazytime", "diratime", "nodiratime",
    ]

    private static func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ value: String?, _: T.Type) throws(Invalid) -> T
    where T.RawValue == String {
        guard let value, let choice = T(rawValue: value) else {
            let choices = T.allCases.map(\.rawValue).joined(separator: " or ")
            throw Invalid(description: "bad \(name) '\(value ?? "")': give \(name)=\(choices)")
        }
        return choice
    }

}
