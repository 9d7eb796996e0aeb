import Foundation
import Testing

/// The README's example sessions, run against a fresh mount: they must print what the
/// README says they print.
@Suite(.serialized) struct ReadmeTests {
    struct Example: Sendable, CustomTestStringConvertible {
        let script: String
        let output: String
        var testDescription: String { String(script.prefix(40)) }
    }

    static let examples: [Example] = {
        guard let readme = try? String(contentsOfFile: TestMount.packageRoot + "/README.md", encoding: .utf8) else { return [] }
        let blocks = readme.components(separatedBy: "<!-- readme-example -->").dropFirst()
        return blocks.compactMap { block in
            let parts = block.components(separatedBy: "<!-- readme-output -->")
            guard parts.count >= 2 else { return nil }
            return Example(script: fencedCode(parts[0]), output: fencedCode(parts[1]))
        }
    }()

    @Test func theReadmeHasExamples() {
        #expect(Self.examples.count >= 4)
    }

    @Test(arguments: examples)
    func exampleRunsAsDocumented(_ example: Example) throws {
        try TestMount.with { mount in
            let script = example.script.replacingOccurrences(of: "/mnt/example", with: mount.directory)
            // `npfs` in the examples is the binary under test.
            let directory = (TestMount.binary as NSString).deletingLastPathComponent
            let path = directory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            let result = try ChildProcess.shell(script, timeout: 30, environment: ["PATH": path])
            #expect(result.status == 0)
            // The README shows a mount served over /dev/fuse; on io_uring (./test.sh's second
            // pass) `npfs status` says so instead, and the rest is the same.
            var expected = example.output
            if try getfattr(mount.directory, "user.npfs.transport").hasPrefix("transport=io_uring"),
               let said = expected.range(of: #"; requests over /dev/fuse \([^)\n]*\)"#, options: .regularExpression),
               let printed = result.output.range(of: #"; requests over io_uring \([^)\n]*\)"#, options: .regularExpression) {
                expected.replaceSubrange(said, with: result.output[printed])
            }
            #expect(result.output == expected, "script:\n\(script)\nprinted:\n\(result.output)")
        }
    }
}

/// The text of the first fenced code block in `text`, with a final newline.
func fencedCode(_ text: String) -> String {
    let lines = text.components(separatedBy: "\n")
    guard let start = lines.firstIndex(where: { $0.hasPrefix("```") }),
          let end = lines[(start + 1)...].firstIndex(where: { $0.hasPrefix("```") }) else { return "" }
    return lines[(start + 1)..<end].joined(separator: "\n") + "\n"
}
