import Foundation
import Glibc
import Testing

/// `./mount.sh --install` and `--uninstall`, the man page, and the shell completions.
@Suite(.serialized) struct InstallTests {
    /// swift-argument-parser's generate-manual, built beside the binary under test by ./test.sh.
    static var generateManual: String { (TestMount.binary as NSString).deletingLastPathComponent + "/generate-manual" }

    static func file(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Issue 8, item 7, and issue 12, items 19 and 20: `./mount.sh --install` puts a copy of
    /// npfs on the PATH (a link into a build folder vanished with it), its man page with
    /// OPTIONS, FILES, EXAMPLES and SEE ALSO, and bash and zsh completions; `--uninstall`
    /// takes all of it away again.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: generateManual),
                   "generate-manual is not built: ./test.sh builds it (swift build --product generate-manual)"))
    func installAndUninstall() throws {
        let prefix = try makeTemporaryDirectory()
        defer { _ = try? ChildProcess.run(["rm", "-rf", prefix], timeout: 10) }
        let environment = ["NPFS_NO_BUILD": "1", "NPFS_BIN": TestMount.binary, "NPFS_PREFIX": prefix,
                           "NPFS_GENERATE_MANUAL": Self.generateManual]
        // What an older mount.sh left: a link into some clone's build folder.
        try FileManager.default.createDirectory(atPath: prefix + "/bin", withIntermediateDirectories: true)
        #expect(symlink("/nonexistent/clone/.build/release/npfs", prefix + "/bin/npfs") == 0)
        let script = TestMount.packageRoot + "/mount.sh"
        let install = try ChildProcess.run([script, "--install"], timeout: 60, environment: environment)
        #expect(install.status == 0, "\(install.output)")
        var info = stat()
        #expect(lstat(prefix + "/bin/npfs", &info) == 0 && info.st_mode & S_IFMT == S_IFREG, "a copy, not a link")
        #expect(FileManager.default.contentsEqual(atPath: prefix + "/bin/npfs", andPath: TestMount.binary))
        let version = try ChildProcess.run([prefix + "/bin/npfs", "--version"], timeout: 10)
        #expect(version.status == 0 && !version.output.isEmpty)

        let manual = Self.file(prefix + "/share/man/man1/npfs.1")
        #expect(manual.contains(".Dt NPFS 1") && manual.contains("peek"), "\(manual.prefix(300))")
        for section in [".Sh DESCRIPTION", ".Sh OPTIONS", ".Sh FILES", ".Sh EXAMPLES", ".Sh SEE ALSO"] {
            #expect(manual.contains(section), "\(section)")
        }
        for option in ["capacity", "open_timeout", "delivery", "protected_pipes", "user_max_pipes", "pipe_mode", "threads", "allow_other"] {
            #expect(manual.contains(".It Cm \(option)"), "OPTIONS lists \(option)")
        }
        for reference in ["fifo 7", "pipe 7", "mount.fuse3 8", "fusermount3 1", "getfattr 1"] {
            #expect(manual.contains(".Xr \(reference)"), "SEE ALSO \(reference)")
        }
        #expect(!manual.contains("`"), "no literal backticks")
        #expect(!manual.contains("finish-manual"), "the hidden command is not in the page")
        let lint = try ChildProcess.shell("groff -mandoc -ww -z '\(prefix)/share/man/man1/npfs.1' 2>&1", timeout: 30)
        #expect(lint.status == 0 && lint.output.isEmpty, "groff warns: \(lint.output.prefix(500))")

        let bash = prefix + "/share/bash-completion/completions/npfs"
        #expect(try ChildProcess.run(["bash", "-n", bash], timeout: 10).status == 0, "the bash completion parses")
        #expect(try ChildProcess.shell("bash -c 'source \(bash) && complete -p npfs'", timeout: 10).output.contains("npfs"))
        let zsh = prefix + "/share/zsh/site-functions/_npfs"
        #expect(Self.file(zsh).hasPrefix("#compdef npfs"))
        #expect(try ChildProcess.run(["zsh", "-n", zsh], timeout: 10).status == 0, "the zsh completion parses")

        let uninstall = try ChildProcess.run([script, "--uninstall"], timeout: 60, environment: environment)
        #expect(uninstall.status == 0, "\(uninstall.output)")
        for path in ["/bin/npfs", "/share/man/man1/npfs.1", "/share/bash-completion/completions/npfs", "/share/zsh/site-functions/_npfs"] {
            #expect(lstat(prefix + path, &info) != 0, "\(path) removed")
        }
        let again = try ChildProcess.run([script, "--uninstall"], timeout: 60, environment: environment)
        #expect(again.status == 0 && again.output.contains("nothing installed"), "\(again.output)")
        let mixed = try ChildProcess.run([script, "--uninstall", "/mnt/x"], timeout: 60, environment: environment)
        #expect(mixed.status != 0 && mixed.output.contains("--uninstall takes no other argument"), "\(mixed.output)")
    }

    /// What TAB offers, through the generated bash completion as bash runs it.
    static func complete(_ words: [String]) throws -> [String] {
        let script = try makeTemporaryDirectory()
        defer { _ = try? ChildProcess.run(["rm", "-rf", script], timeout: 10) }
        let completion = try ChildProcess.run([TestMount.binary, "--generate-completion-script", "bash"], timeout: 10)
        try completion.output.write(toFile: script + "/npfs.bash", atomically: true, encoding: .utf8)
        let driver = """
            source "$1"; shift
            COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
            _npfs "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        try driver.write(toFile: script + "/driver.sh", atomically: true, encoding: .utf8)
        let result = try ChildProcess.run(["bash", script + "/driver.sh", script + "/npfs.bash", TestMount.binary] + words, timeout: 20)
        return result.output.split(separator: "\n").map(String.init).sorted()
    }

    /// Issue 12, item 19: mount points, the live pipes under a mount, set and get keys and
    /// values, and -o options, each part of a comma-separated list.
    @Test func completionsOfferMountsPipesSettingsAndOptions() throws {
        func check(_ words: [String], expected: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let offered = try Self.complete(words)
            #expect(offered == expected.sorted(), "\(words)", sourceLocation: sourceLocation)
        }
        try TestMount.with { mount in
            let alpha = open(mount.path("ALPHA"), O_RDWR), also = open(mount.path("ALSO"), O_RDWR)
            defer { close(alpha); close(also) }
            try check(["set", mount.path("AL")], expected: [mount.path("ALPHA"), mount.path("ALSO")])
            try check(["peek", mount.path("ALP")], expected: [mount.path("ALPHA")])
            try check(["set", mount.path("ALPHA"), "mo"], expected: ["mode="])
            try check(["set", mount.path("ALPHA"), "delivery="], expected: ["delivery=broadcast", "delivery=shared"])
            try check(["get", mount.path("ALPHA"), "bytes_"], expected: ["bytes_read", "bytes_written"])
            try check(["status", mount.directory], expected: [mount.directory])
            let mounts = try Self.complete(["unmount", String(mount.directory.dropLast(3))])
            #expect(mounts.contains(mount.directory), "\(mounts)")
            // A path on the way to a mount: its directories.
            let parent = (mount.directory as NSString).deletingLastPathComponent
            let name = (mount.directory as NSString).lastPathComponent
            try check(["get", parent + "/" + name], expected: [mount.directory + "/"])
            try check(["mount", "-o", "capacity=64K,prot"], expected: ["capacity=64K,protected_pipes="])
            try check(["mount", "-o", "mode=ring,overflow="], expected: ["mode=ring,overflow=drop", "mode=ring,overflow=overwrite"])
        }
    }
}
