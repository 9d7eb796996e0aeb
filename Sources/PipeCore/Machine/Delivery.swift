/// How a pipe's bytes reach its readers, holding what that way needs: shared delivery with
/// its messages' lengths (message framing), or broadcast with its readers' cursors and its
/// messages' starts. The framing is part of it too: a pipe frames messages exactly when
/// its delivery keeps them, so no flag can disagree with the bookkeeping.
enum Delivery: ~Copyable, Sendable {
    /// Readers compete for bytes, as on a FIFO; with message framing, the lengths of the
    /// buffered messages.
    case shared(MessageQueue?)
    /// Every reader gets every byte written after its open.
    case broadcast(Broadcast)

    /// A delivery with nothing buffered, its readers (broadcast) at the start of the stream.
    init(_ kind: PipeConfig.Delivery, _ framing: PipeConfig.Framing, readers: Set<OpenID>) {
        let framed = framing == .message
        switch kind {
        case .shared: self = .shared(framed ? MessageQueue() : nil)
        case .broadcast: self = .broadcast(Broadcast(readers: readers, framed: framed))
        }
    }

    var kind: PipeConfig.Delivery {
        switch self {
        case .shared: .shared
        case .broadcast: .broadcast
        }
    }

    var framing: PipeConfig.Framing {
        switch self {
        case .shared(let messages): messages == nil ? .stream : .message
        case .broadcast(let state): state.messages == nil ? .stream : .message
        }
    }

    var framed: Bool { framing == .message }

    var isBroadcast: Bool {
        switch self {
        case .shared: false
        case .broadcast: true
        }
    }

    /// Bytes of memory the bookkeeping holds (the messages' lengths).
    var allocatedBytes: Int {
        switch self {
        case .shared(let messages):
            switch messages {
            case .some(let queue): queue.allocatedBytes
            case .none: 0
            }
        case .broadcast: 0
        }
    }

    /// Shared delivery with message framing: the unread bytes of the oldest message.
    var oldestMessageRemaining: Int? {
        switch self {
        case .shared(let messages):
            switch messages {
            case .some(let queue): queue.oldestRemaining
            case .none: nil
            }
        case .broadcast: nil
        }
    }

    /// Broadcast delivery: the bytes ahead of `reader` in a buffer of `buffered` bytes.
    func available(to reader: OpenID, buffered: Int) -> Int {
        switch self {
        case .shared: 0
        case .broadcast(let state): state.available(to: reader, buffered: buffered)
        }
    }

    /// A message of `length` bytes was buffered after `buffered` others (message framing).
    mutating func recordMessage(length: Int, after buffered: Int) {
        switch consume self {
        case .shared(let messages):
            switch consume messages {
            case .some(var queue):
                queue.append(length)
                self = .shared(queue)
            case .none:
                self = .shared(nil)
            }
        case .broadcast(var state):
            state.messages?.append(start: state.base + UInt64(buffered), length: length)
            self = .broadcast(state)
        }
    }

    /// Runs `body` on the shared delivery's message lengths; nil if there are none.
    mutating func withMessages<Result>(_ body: (inout MessageQueue) -> Result) -> Result? {
        switch consume self {
        case .shared(let messages):
            switch consume messages {
            case .some(var queue):
                let result = body(&queue)
                self = .shared(queue)
                return result
            case .none:
                self = .shared(nil)
                return nil
            }
        case .broadcast(let state):
            self = .broadcast(state)
            return nil
        }
    }

    /// What `body` finds in the broadcast bookkeeping; nil with shared delivery.
    func inspectBroadcast<Result>(_ body: (borrowing Broadcast) -> Result) -> Result? {
        switch self {
        case .shared: nil
        case .broadcast(let state): body(state)
        }
    }

    /// Runs `body` on the broadcast bookkeeping; nil with shared delivery.
    mutating func withBroadcast<Result>(_ body: (inout Broadcast) -> Result) -> Result? {
        switch consume self {
        case .broadcast(var state):
            let result = body(&state)
            self = .broadcast(state)
            return result
        case .shared(let messages):
            self = .shared(messages)
            return nil
        }
    }

    /// Frees the lengths' storage if idle (see `ByteRing.trim`).
    mutating func trim() { _ = withMessages { $0.trim() } }

    /// For tests: the bookkeeping accounts for the `buffered` bytes and for `readers`.
    func isConsistent(buffered: Int, readers: Set<OpenID>) -> Bool {
        switch self {
        case .shared(let messages):
            switch messages {
            case .some(let queue): return queue.unreadBytes == buffered
            case .none: return true
            }
        case .broadcast(let state):
            let end = state.base + UInt64(buffered)
            return (state.messages?.bytes(from: state.base) ?? buffered) == buffered
                && state.cursors.isConsistent(end: end) && Set(state.cursors.handles) == readers
        }
    }
}

/// Broadcast delivery's bookkeeping (see `PipeMachine+Broadcast`).
struct Broadcast: ~Copyable, Sendable {
    /// Each reader's position in the stream.
    var cursors = BroadcastCursors()
    /// The stream position of the buffer's oldest byte, the slowest reader's.
    var base: UInt64 = 0
    /// Which buffered bytes some reader has read.
    var readMarks = ReadMarks()
    /// With message framing: the buffered messages.
    var messages: BroadcastMessages?

    init(readers: Set<OpenID>, framed: Bool) {
        cursors.reset(readers, at: 0)
        messages = framed ? BroadcastMessages() : nil
    }

    /// Bytes ahead of a reader's position in a buffer of `buffered` bytes.
    func available(to reader: OpenID, buffered: Int) -> Int {
        guard let position = cursors.position(of: reader, base: base) else { return 0 }
        let end = base + UInt64(buffered)
        return Int(end - min(position, end))
    }
}
