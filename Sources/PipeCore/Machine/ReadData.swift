/// The bytes a read is answered with, lent by the pipe without copying: contiguous pieces
/// of its buffer or of waiting writers' requests, in order.
///
/// Valid only during the call it is passed to, which runs under the pipe's lock: the
/// adapter sends the pieces to the kernel in one vectored reply and keeps no pointer.
package struct ReadData {
    /// The pieces, oldest first; none is empty.
    package let pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>
    /// Their total length in bytes.
    package let count: Int

    init(pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>, count: Int) {
        self.pieces = pieces
        self.count = count
    }

    /// The bytes, copied into an array (for tests and the rare paths that keep them).
    package func copied() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for piece in pieces { bytes.append(contentsOf: piece) }
        return bytes
    }

    /// At most this many pieces: the ring's two and those of waiting writers.
    static let maximumPieces = 16

    /// Lends one or two contiguous pieces (an empty second is left out) to `target`.
    static func lend(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                     to target: ReadTarget, through lender: some Lender) {
        withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: 2) { pieces in
            let used = place(first, second, into: pieces)
            lender.lend(ReadData(pieces: UnsafeBufferPointer(rebasing: pieces[..<used]), count: first.count + second.count), to: target)
        }
    }

    /// Puts the non-empty ones of two pieces (a ring's segments) at the start of `pieces`,
    /// which has room for both; returns how many.
    static func place(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer,
                      into pieces: UnsafeMutableBufferPointer<UnsafeRawBufferPointer>) -> Int {
        var used = 0
        if first.count > 0 {
            pieces[used] = first
            used += 1
        }
        if second.count > 0 {
            pieces[used] = second
            used += 1
        }
        return used
    }
}

/// Where a read's bytes go when they are there at once: a C function and the context it
/// is called with, so that lending them copies no reference and allocates nothing (the
/// adapter sends them to /dev/fuse from the pipe's buffer). `send` gets the context and the
/// address of the `ReadData` (read it with `ReadSink.data`), valid only during the call,
/// which is made at most once, during the read, under the pipe's lock.
/// Unchecked Sendable: it never leaves the read's thread.
package struct ReadSink: @unchecked Sendable {
    package let context: UnsafeMutableRawPointer?
    package let send: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer) -> Void

    package init(context: UnsafeMutableRawPointer?, send: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer) -> Void) {
        self.context = context
        self.send = send
    }

    func callAsFunction(_ data: ReadData) { withUnsafePointer(to: data) { send(context, UnsafeRawPointer($0)) } }

    /// The bytes `send` was given.
    package static func data(_ address: UnsafeRawPointer) -> ReadData { address.assumingMemoryBound(to: ReadData.self).pointee }
}
