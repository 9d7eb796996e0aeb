/// The `-o` options of `npfs mount`: npfs's own, and standard FUSE options passed through.
public struct MountOptions: Sendable, Equatable {
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Standard FUSE and mount options handed to libfuse as they are.
    public static let passedThrough: Set<String> = [
        "allow_other", "allow_root", "auto_unmount", "default_permissions",
        "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
        "atime", "noatime", "sync", "async", "dirsync",
    ]
    /// Pass-through options that take a value (`name=value`).
    public static let passedThroughWithValue: Set<String> = ["fsname", "subtype", "max_read"]

    public var pipe: PipeConfig
    /// Options for libfuse, npfs's defaults first.
    public var fuseOptions: [String]

    public init(pipe: PipeConfig, fuseOptions: [String]) {
        self.pipe = pipe
        self.fuseOptions = fuseOptions
    }

    /// Parses `-o` arguments, each a comma-separated list.
    public static func parse(_ arguments: [String]) throws(Invalid) -> MountOptions {
        var capacity = PipeConfig.defaultCapacity
        var fuse: [String] = []
        var named: Set<String> = []
        for option in arguments.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: true) }) {
            let parts = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count == 2 ? String(parts[1]) : nil
            named.insert(name)
            switch name {
            case "capacity":
                guard let value, let bytes = parseSize(value) else {
                    throw Invalid(description: "bad capacity '\(value ?? "")': give bytes, optionally with K, M or G (e.g. capacity=64K)")
                }
                guard (PipeConfig.minimumCapacity...PipeConfig.maximumCapacity).contains(bytes) else {
                    throw Invalid(description: "capacity \(value) out of range: from 4K to 1G")
                }
                capacity = bytes
            case _ where passedThrough.contains(name) && value == nil:
                fuse.append(name)
            case _ where passedThroughWithValue.contains(name) && value != nil && !value!.isEmpty:
                fuse.append(String(option))
            default:
                throw Invalid(description: "unknown mount option '\(option)'")
            }
        }
        var defaults = ["default_permissions"]
        if !named.contains("fsname") { defaults.append("fsname=npfs") }
        if !named.contains("subtype") { defaults.append("subtype=npfs") }
        // The error is thrown above, so this cannot fail.
        let pipe = try! PipeConfig(capacity: capacity)
        return MountOptions(pipe: pipe, fuseOptions: defaults + fuse.filter { $0 != "default_permissions" })
    }

    /// "65536", "64K", "64k", "64KiB", "1M", "1G": bytes, with binary multiples.
    public static func parseSize(_ text: String) -> Int? {
        var digits = Substring(text)
        var multiplier = 1
        for (suffixes, factor) in [(["KiB", "KB", "K", "k"], 1 << 10), (["MiB", "MB", "M", "m"], 1 << 20), (["GiB", "GB", "G", "g"], 1 << 30)] {
            if let suffix = suffixes.first(where: { digits.hasSuffix($0) }) {
                digits = digits.dropLast(suffix.count)
                multiplier = factor
                break
            }
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
              let number = Int(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }
}
