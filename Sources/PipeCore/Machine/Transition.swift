/// One step of a pipe's machine: its input time, and the effects it has decided so far,
/// which the executor performs once it has let go of its locks: waits to resume with their
/// replies, in order, and whether the pipe's readiness may have changed (pollers to tell).
///
/// Bytes lent to reads are the one effect performed during the step, through the step's
/// `Lender`: they are the machine's own buffered bytes (or a waiting writer's), valid only
/// until the machine changes again. A local pipe sends them from there, uncopied.
package struct Transition: Sendable {
    /// The time of the step: what `lastRead` and `lastWrite` become if bytes move.
    package let now: Timestamp
    package private(set) var replies: [(wait: WaitID, reply: PipeReply)] = []
    package private(set) var readinessChanged = false

    package init(at now: Timestamp) { self.now = now }

    mutating func resume(_ wait: WaitID, with reply: PipeReply) { replies.append((wait, reply)) }

    mutating func changeReadiness() { readinessChanged = true }
}

/// Lends bytes to reads during a transition (see `Transition`): the executor sends them,
/// or copies them to send later.
protocol Lender {
    func lend(_ data: ReadData, to target: ReadTarget)
}

