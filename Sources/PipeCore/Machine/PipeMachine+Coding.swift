/// A machine as bytes and back (see `StateWriter`), for an executor that keeps it in a
/// database between transitions. Everything it decides from is kept: settings, ends and
/// their counters, waits (a waiting write with its bytes), delivery bookkeeping, figures
/// and the buffered bytes.
extension PipeMachine where Buffer: StoredBuffer & ~Copyable {
    /// The format's version, first of the bytes (1 had no `persist`; it is read as off).
    static var encodingVersion: UInt8 { 2 }

    func encoded() -> [UInt8] {
        var writer = StateWriter()
        writer.put(Self.encodingVersion)
        ring.encode(into: &writer)
        writer.put(mode)
        writer.put(overflow)
        writer.put(openTimeout)
        writer.put(persist)
        delivery.encode(into: &writer)
        ownership.encode(into: &writer)
        writer.put(readerOpens.count)
        for open in readerOpens.sorted(by: OpenID.precedes) { open.encode(into: &writer) }
        writer.put(readers)
        writer.put(writers)
        writer.put(closed)
        writer.put(refusingOpens)
        writer.put(readerOpenCount)
        writer.put(writerOpenCount)
        writer.put(openWaits.count)
        for wait in openWaits {
            wait.wait.encode(into: &writer)
            wait.open.encode(into: &writer)
            wait.access.encode(into: &writer)
        }
        writer.put(readWaits.count)
        for wait in readWaits {
            wait.wait.encode(into: &writer)
            wait.open.encode(into: &writer)
            writer.put(wait.size)
        }
        writer.put(writeWaits.count)
        for wait in writeWaits {
            wait.wait.encode(into: &writer)
            wait.open.encode(into: &writer)
            writer.put(bytes: wait.data.bytes)
            writer.put(wait.taken)
            writer.put(wait.atomic)
            writer.put(wait.takenBefore)
        }
        writer.put(bytesWritten)
        writer.put(bytesRead)
        writer.put(dropped)
        for time in [created, lastRead, lastWrite] { time.encode(into: &writer) }
        return writer.bytes
    }

    /// The machine `encoded()` gave; waiting writes' bytes are charged to `budget`, and a
    /// buffer that keeps its bytes elsewhere reads them from `source`. Everything is read
    /// (and checked) before anything is kept.
    init(decoding bytes: [UInt8], budget: ByteBudget, source: (any PageSource)? = nil) throws(StateDecodingError) {
        var reader = StateReader(bytes)
        let version = try reader.uint8()
        guard version == 1 || version == Self.encodingVersion else { throw StateDecodingError("unknown state version") }
        let buffer = try Buffer(decoding: &reader, source: source)
        let count = buffer.count
        let mode = try reader.choice(PipeConfig.Mode.self)
        let overflow = try reader.choice(PipeConfig.Overflow.self)
        let openTimeout = try reader.double()
        let persist = version >= 2 ? try reader.bool() : false
        let delivery = try Delivery(decoding: &reader)
        let ownership = try Ownership(decoding: &reader)
        var readerOpens: Set<OpenID> = []
        for _ in 0..<(try reader.count(atMost: 1 << 24)) { readerOpens.insert(try OpenID(decoding: &reader)) }
        let readers = try reader.count(atMost: 1 << 24)
        let writers = try reader.count(atMost: 1 << 24)
        let closed = try reader.bool()
        let refusingOpens = try reader.bool()
        let readerOpenCount = try reader.uint64()
        let writerOpenCount = try reader.uint64()
        var openWaits: [OpenWait] = []
        for _ in 0..<(try reader.count(atMost: 1 << 24)) {
            openWaits.append(OpenWait(wait: try WaitID(decoding: &reader), open: try OpenID(decoding: &reader),
                                      access: try AccessMode(decoding: &reader)))
        }
        var readWaits: [ReadWait] = []
        for _ in 0..<(try reader.count(atMost: 1 << 24)) {
            readWaits.append(ReadWait(wait: try WaitID(decoding: &reader), open: try OpenID(decoding: &reader),
                                      size: try reader.count(atMost: Int(Int32.max))))
        }
        var writeWaits: [WriteWait] = []
        for _ in 0..<(try reader.count(atMost: 1 << 24)) {
            let wait = try WaitID(decoding: &reader)
            let open = try OpenID(decoding: &reader)
            let bytes = try reader.bytes()
            let taken = try reader.count(atMost: bytes.count)
            let atomic = try reader.bool()
            let takenBefore = try reader.count(atMost: Int(Int32.max))
            guard let data = bytes.withUnsafeBytes({ WaitingBytes(copying: $0, budget: budget, uid: 0) }) else {
                throw StateDecodingError("no room for a waiting write")
            }
            writeWaits.append(WriteWait(wait: wait, open: open, data: data, taken: taken, atomic: atomic, takenBefore: takenBefore))
        }
        let bytesWritten = try reader.uint64()
        let bytesRead = try reader.uint64()
        let dropped = try reader.uint64()
        let created = try Timestamp(decoding: &reader)
        let lastRead = try Timestamp(decoding: &reader)
        let lastWrite = try Timestamp(decoding: &reader)
        guard reader.isAtEnd, UInt64(count) == bytesWritten &- bytesRead &- dropped else {
            throw StateDecodingError("inconsistent state")
        }
        ring = buffer
        self.mode = mode
        self.overflow = overflow
        self.openTimeout = openTimeout
        self.persist = persist
        self.delivery = delivery
        self.ownership = ownership
        self.readerOpens = readerOpens
        self.readers = readers
        self.writers = writers
        self.closed = closed
        self.refusingOpens = refusingOpens
        self.readerOpenCount = readerOpenCount
        self.writerOpenCount = writerOpenCount
        self.openWaits = openWaits
        self.readWaits = readWaits
        self.writeWaits = writeWaits
        self.bytesWritten = bytesWritten
        self.bytesRead = bytesRead
        self.dropped = dropped
        self.created = created
        self.lastRead = lastRead
        self.lastWrite = lastWrite
    }
}

/// A buffer a machine's state can carry: `ByteRing` with its bytes, `PagedBuffer` with
/// the positions of bytes kept in pages elsewhere.
package protocol StoredBuffer: PipeBuffer, ~Copyable {
    func encode(into writer: inout StateWriter)
    init(decoding reader: inout StateReader, source: (any PageSource)?) throws(StateDecodingError)
}

extension ByteRing: StoredBuffer {
    /// The capacity and the bytes in order, however the ring has them wrapped.
    package func encode(into writer: inout StateWriter) {
        writer.put(limit)
        let (first, second) = segments(upTo: count)
        writer.put(count)
        writer.append(first)
        writer.append(second)
    }

    package init(decoding reader: inout StateReader, source: (any PageSource)?) throws(StateDecodingError) {
        let limit = try reader.count(atMost: PipeConfig.maximumCapacity)
        guard limit > 0 else { throw StateDecodingError("bad capacity") }
        let buffered = try reader.raw(try reader.count(atMost: limit))
        self.init(limit: limit)
        buffered.withUnsafeBytes { write($0) }
    }
}

extension Delivery {
    func encode(into writer: inout StateWriter) {
        switch self {
        case .shared(let messages):
            writer.put(UInt8(0))
            switch messages {
            case .some(let queue):
                writer.put(true)
                queue.encode(into: &writer)
            case .none:
                writer.put(false)
            }
        case .broadcast(let state):
            writer.put(UInt8(1))
            state.cursors.encode(into: &writer)
            writer.put(state.base)
            state.readMarks.encode(into: &writer)
            writer.put(state.messages != nil)
            state.messages?.encode(into: &writer)
        }
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        switch try reader.uint8() {
        case 0:
            self = .shared(try reader.bool() ? try MessageQueue(decoding: &reader) : nil)
        case 1:
            var state = Broadcast(readers: [], framed: false)
            state.cursors = try BroadcastCursors(decoding: &reader)
            state.base = try reader.uint64()
            state.readMarks = try ReadMarks(decoding: &reader)
            state.messages = try reader.bool() ? try BroadcastMessages(decoding: &reader) : nil
            self = .broadcast(state)
        default:
            throw StateDecodingError("unknown delivery")
        }
    }
}

extension OpenID {
    /// The order encodings list opens in, so that equal states encode equally.
    static func precedes(_ a: OpenID, _ b: OpenID) -> Bool { (a.host.rawValue, a.handle.rawValue) < (b.host.rawValue, b.handle.rawValue) }

    func encode(into writer: inout StateWriter) {
        writer.put(host.rawValue)
        writer.put(handle.rawValue)
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init(host: HostID(rawValue: try reader.uint32()), handle: PipeHandle(rawValue: try reader.uint64()))
    }
}

extension WaitID {
    func encode(into writer: inout StateWriter) {
        writer.put(host.rawValue)
        writer.put(number)
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init(host: HostID(rawValue: try reader.uint32()), number: try reader.uint64())
    }
}

extension AccessMode {
    func encode(into writer: inout StateWriter) { writer.put(UInt8(openFlags)) }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        let code = try reader.uint8()
        guard code < 3, let mode = AccessMode(openFlags: Int32(code)) else { throw StateDecodingError("unknown access mode") }
        self = mode
    }
}

extension Ownership {
    func encode(into writer: inout StateWriter) {
        writer.put(uid)
        writer.put(gid)
        writer.put(permissions)
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init(uid: try reader.uint32(), gid: try reader.uint32(), permissions: try reader.uint32())
    }
}

extension Timestamp {
    func encode(into writer: inout StateWriter) {
        writer.put(seconds)
        writer.put(nanoseconds)
    }

    init(decoding reader: inout StateReader) throws(StateDecodingError) {
        self.init(seconds: try reader.int(), nanoseconds: try reader.int())
    }
}
