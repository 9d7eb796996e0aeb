import ArgumentParser
import Glibc
import NpfsClient
import PipeCore
import PipeFuse

/// What TAB offers in bash and zsh (swift-argument-parser runs these when asked by the
/// shell's completion script): npfs mount points, the live pipes under a mount, setting
/// keys and values, and `-o` options. Each takes the word typed so far.
enum Completions {
    /// Mount points of npfs (`fuse.npfs` in the mount table, stale ones included).
    static let mountPoints = CompletionKind.custom { _, _, prefix in mountPoints(matching: prefix) }
    /// MOUNTPOINT/NAME of live pipes, and the directories on the way to a mount.
    static let pipes = CompletionKind.custom { _, _, prefix in pipes(matching: prefix) }
    /// `-o` options, each part of a comma-separated list, with their values after `=`.
    static let mountOptions = CompletionKind.custom { _, _, prefix in
        options(matching: prefix, from: MountOptions.catalogue, separator: ",")
    }
    /// `KEY=VALUE` of the settings `npfs set` changes.
    static let settings = CompletionKind.custom { _, _, prefix in
        let settable = Set(PipeAttribute.allCases.filter(\.isSettable).map(\.rawValue))
        return options(matching: prefix, from: MountOptions.catalogue.filter { settable.contains($0.name) }, separator: nil)
    }
    /// The keys `npfs get` shows.
    static let keys = CompletionKind.list(PipeAttribute.allCases.map(\.rawValue))

    static func mountPoints(matching prefix: String) -> [String] {
        let mounts = MountTable.current().entries.filter { $0.type == "fuse.npfs" }.map(\.mountpoint)
        return relative(mounts, to: prefix).filter { $0.hasPrefix(prefix) }
    }

    /// Absolute paths as typed: relative to the current directory if `prefix` is relative.
    private static func relative(_ paths: [String], to prefix: String) -> [String] {
        guard !prefix.hasPrefix("/") else { return paths }
        let cwd = absolutePath(".")
        let base = cwd == "/" ? "/" : cwd + "/"
        return paths.compactMap { $0.hasPrefix(base) ? String($0.dropFirst(base.count)) : nil }
    }

    static func pipes(matching prefix: String) -> [String] {
        let slash = prefix.lastIndex(of: "/")
        let directory = slash.map { String(prefix[...$0]) } ?? ""
        let partial = slash.map { String(prefix[prefix.index(after: $0)...]) } ?? prefix
        let path = directory.isEmpty ? "." : directory
        let isMount = MountTable.current().entry(at: absolutePath(path))?.type == "fuse.npfs"
        var found: [String] = []
        for entry in (try? DirectoryEntry.list(path)) ?? [] {
            let name = String(decoding: entry.name, as: UTF8.self)
            guard name.hasPrefix(partial) else { continue }
            if isMount { found.append(directory + name) } else if entry.isDirectory { found.append(directory + name + "/") }
        }
        return found.sorted()
    }

    /// `name` or `name=` for each option, or, after `name=`, that option's values; with
    /// a separator, only the last part of the list is completed.
    static func options(matching prefix: String, from catalogue: [MountOptions.Documented], separator: Character?) -> [String] {
        let cut = separator.flatMap { prefix.lastIndex(of: $0) }
        let head = cut.map { String(prefix[...$0]) } ?? ""
        let part = cut.map { String(prefix[prefix.index(after: $0)...]) } ?? prefix
        if let equals = part.firstIndex(of: "=") {
            let name = String(part[..<equals])
            let choices = catalogue.first { $0.name == name }?.choices ?? []
            return choices.map { head + name + "=" + $0 }.filter { $0.hasPrefix(prefix) }
        }
        return catalogue.map { head + $0.name + ($0.value == nil ? "" : "=") }.filter { $0.hasPrefix(prefix) }
    }
}
