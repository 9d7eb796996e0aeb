import Glibc
import SystemPackage

/// Bytes to standard output as they are, whole (a `write` may take only part of them).
package enum StandardOutput {
    package static func write(_ bytes: [UInt8]) throws(Errno) { try Syscalls.writeAll(STDOUT_FILENO, bytes) }
}
