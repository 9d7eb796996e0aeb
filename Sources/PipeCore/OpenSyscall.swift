import Glibc

/// What the kernel does not tell a FUSE daemon: whether an open(2) asked for O_CREAT. It
/// takes O_CREAT (and O_EXCL) out of the flags it sends with FUSE_OPEN (`fuse_send_open`),
/// and a name that exists, as every name here does, never gets FUSE_CREATE. The calling
/// thread waits in its system call meanwhile, and `/proc/TID/syscall` shows that call with
/// its arguments; `open`, `openat` and `creat` tell exactly.
package enum OpenSyscall {
    /// From a `/proc/TID/syscall` line (the call's number, then its arguments in hex):
    /// whether an open-like call asked for O_CREAT; nil for another call (`openat2`, whose
    /// flags are in the caller's memory, included) or a line that cannot be read.
    package static func usesCreate(_ line: String) -> Bool? {
        let fields = line.split(separator: " ")
        guard let number = fields.first.flatMap({ Int($0) }) else { return nil }
        func argument(_ index: Int) -> UInt64? {
            guard fields.count > index + 1 else { return nil }
            let text = fields[index + 1]
            return UInt64(text.hasPrefix("0x") ? text.dropFirst(2) : text, radix: 16)
        }
        let flags: UInt64?
        switch number {
        case 2: flags = argument(1)      // open(path, flags, mode)
        case 257: flags = argument(2)    // openat(dirfd, path, flags, mode)
        case 85: return true             // creat(path, mode)
        default: return nil
        }
        return flags.map { $0 & UInt64(O_CREAT) != 0 }
    }

    /// Where the call cannot be seen (a daemon not allowed to trace the caller, `openat2`,
    /// io_uring): an open for writing with O_TRUNC or O_APPEND, which the shell's `>` and
    /// `>>`, fopen's "w" and "a" and most programs add to O_CREAT, is taken for one.
    package static func likelyCreate(flags: Int32) -> Bool {
        flags & O_ACCMODE != O_RDONLY && flags & (O_TRUNC | O_APPEND) != 0
    }
}
