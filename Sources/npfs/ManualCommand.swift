import ArgumentParser
import PipeCore
import PipeFuse

/// `npfs finish-manual < generated > npfs.1` (hidden; run by `./mount.sh --install`): adds
/// to the page swift-argument-parser's generate-manual makes from the commands the
/// sections it cannot: OPTIONS (every `-o`, from `MountOptions.catalogue`) and FILES
/// before EXIT STATUS, EXAMPLES and SEE ALSO after it.
struct ManualCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finish-manual",
        abstract: "Complete the generated man page (for mount.sh --install).",
        shouldDisplay: false
    )

    func run() throws {
        var page: [String] = []
        while let line = readLine(strippingNewline: true) { page.append(line) }
        print(Self.finish(page.joined(separator: "\n")))
    }

    static func finish(_ generated: String) -> String {
        let generated = withoutHiddenCommand(generated)
        let marker = ".Sh \"EXIT STATUS\""
        let (before, after) = generated.range(of: marker).map {
            (String(generated[..<$0.lowerBound]), String(generated[$0.lowerBound...]))
        } ?? (generated + "\n", "")
        return before + options + files + after + "\n" + examples + seeAlso
    }

    /// The page without this command's own entry (generate-manual lists hidden commands):
    /// from its `.It Em` line to the end of its options list.
    private static func withoutHiddenCommand(_ page: String) -> String {
        var lines = page.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(of: ".It Em \(configuration.commandName ?? "")"),
              let end = lines[start...].firstIndex(of: ".El") else { return page }
        lines.removeSubrange(start...end)
        return lines.joined(separator: "\n")
    }

    /// mdoc text from plain text: a leading dot or quote would start a request.
    private static func text(_ plain: String) -> String {
        plain.replacingOccurrences(of: "\\", with: "\\e")
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.first == "." || $0.first == "'" ? "\\&" + $0 : String($0) }.joined(separator: "\n")
    }

    static var options: String {
        var lines = [".Sh OPTIONS",
                     "Mount options go after", ".Fl o", "as a comma-separated list, or in the options field of an",
                     ".Pa /etc/fstab", "line. They set every pipe's settings when it is created; a live pipe changes its own with",
                     ".Nm", "set", "or", ".Xr setfattr 1", "on its user.npfs attributes.",
                     ".Bl -tag -width Ds"]
        // Options that share a description (the standard flags) share an entry.
        var groups: [[MountOptions.Documented]] = []
        for option in MountOptions.catalogue {
            if let last = groups.last?.last, last.summary == option.summary { groups[groups.count - 1].append(option) } else { groups.append([option]) }
        }
        for group in groups {
            let items = group.map { option in option.value.map { "Cm \(option.name) Ns = Ns Ar \(text($0))" } ?? "Cm \(option.name)" }
            lines.append(".It " + items.joined(separator: " , "))
            lines.append(text(group[0].summary))
        }
        lines += [".El", ".Pp",
                  "The fstab words " + MountOptions.ignoredMountFlags.sorted().joined(separator: ", ")
                      + " are accepted and ignored."]
        return lines.joined(separator: "\n") + "\n"
    }

    static var files: String {
        """
        .Sh FILES
        .Bl -tag -width Ds
        .It Pa MOUNTPOINT/NAME
        A named pipe, live while some process has it open. Its extended attributes user.npfs.capacity, mode, overflow, framing, delivery and open_timeout are its settings; readers, writers, buffered, bytes_written, bytes_read and dropped its figures; user.npfs.clients its opens and user.npfs.peek its next bytes.
        .It Pa /etc/fstab
        A line such as
        .Dl none /mnt/example fuse.npfs allow_other,nofail 0 0
        mounts npfs at boot or with mount /mnt/example.
        .It Pa /etc/fuse.conf
        user_allow_other lets users other than root mount with allow_other.
        .It Pa /proc/self/mountinfo
        npfs mounts show as type fuse.npfs.
        .El

        """
    }

    static var examples: String {
        """
        .Sh EXAMPLES
        Mount, and pass a line from one shell to another:
        .Bd -literal -offset indent
        npfs mount /mnt/example
        cat /mnt/example/HELLO &
        echo hello > /mnt/example/HELLO
        .Ed
        .Pp
        A ring of 1 MiB that never blocks its writer, keeping the newest bytes:
        .Bd -literal -offset indent
        npfs mount -o mode=ring,overflow=overwrite,capacity=1M /mnt/ring
        .Ed
        .Pp
        Change a live pipe, read its figures, watch the mount:
        .Bd -literal -offset indent
        npfs set /mnt/example/LOG capacity=1M open_timeout=5
        npfs get /mnt/example/LOG buffered
        getfattr -d -m user.npfs /mnt/example/LOG
        npfs status --watch 0.5 /mnt/example
        .Ed
        .Pp
        Unmount while pipes are open and requests wait:
        .Dl npfs unmount /mnt/example

        """
    }

    static var seeAlso: String {
        """
        .Sh SEE ALSO
        .Xr fusermount3 1 ,
        .Xr getfattr 1 ,
        .Xr mkfifo 1 ,
        .Xr setfattr 1 ,
        .Xr pipe 7 ,
        .Xr fifo 7 ,
        .Xr mount.fuse3 8
        """
    }
}
