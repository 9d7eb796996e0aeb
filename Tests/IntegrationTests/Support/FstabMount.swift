import Foundation
import Glibc

/// Mounts npfs as mount(8) does from an fstab line with `options`, on a fresh directory,
/// and runs `body` with the directory and what `mount -T` said; always unmounts (if still
/// mounted) and removes what it made. With `fuse.npfs` as the type, mount.fuse3 runs `npfs`
/// from PATH; the line names the test's binary with the equivalent `PROGRAM#SOURCE` form
/// instead of installing it.
func withFstabMount(options: String, _ body: (_ directory: String, _ mounted: (status: Int32, output: String)) throws -> Void) throws {
    let directory = try makeTemporaryDirectory()
    defer { rmdir(directory) }
    let files = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: files) }
    let fstab = files + "/fstab"
    try "\(TestMount.binary)#none \(directory) fuse \(options) 0 0\n".write(toFile: fstab, atomically: true, encoding: .utf8)
    let mounted = try ChildProcess.run(["mount", "-T", fstab, directory], timeout: 30)
    defer { if isMounted(directory) { _ = try? ChildProcess.run([TestMount.binary, "unmount", directory], timeout: 30) } }
    try body(directory, mounted)
}
