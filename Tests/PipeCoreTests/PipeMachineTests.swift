@testable import PipeCore
import SystemPackage
import Testing

/// The machine on its own, as any executor runs it: ids in, effects out, the time an input.
@Suite struct PipeMachineTests {
    typealias Machine = PipeMachine<ByteRing>

    /// Records what a transition lends, copied.
    final class Lends: Lender {
        var received: [(ReadTarget, [UInt8])] = []
        func lend(_ data: ReadData, to target: ReadTarget) { received.append((target, data.copied())) }
    }

    static let reader = OpenID(host: HostID(rawValue: 7), handle: PipeHandle(rawValue: 1))
    static let writer = OpenID(host: HostID(rawValue: 9), handle: PipeHandle(rawValue: 2))

    func machine(_ config: PipeConfig = .defaults) -> Machine {
        Machine(config: config, ownership: Ownership(uid: 0, gid: 0, permissions: 0o666), at: Timestamp(seconds: 100, nanoseconds: 0))
    }

    @Test func aWaitingOpenIsAnsweredByIdInTheStepThatCompletesIt() {
        var pipe = machine()
        let wait = WaitID(host: HostID(rawValue: 7), number: 41)
        var first = Transition(at: Timestamp(seconds: 101, nanoseconds: 0))
        let (attempt, _) = pipe.open(Self.reader, access: .read, nonblocking: false, wait: WaitOffer(wait, interrupted: false), &first)
        #expect(attempt == .queued)
        #expect(first.replies.isEmpty)
        #expect(pipe.waitIDs == [wait])

        var second = Transition(at: Timestamp(seconds: 102, nanoseconds: 0))
        let other = WaitOffer(WaitID(host: HostID(rawValue: 9), number: 1), interrupted: false)
        let (opened, _) = pipe.open(Self.writer, access: .write, nonblocking: false, wait: other, &second)
        #expect(opened == .done(.opened(Self.writer.handle)))
        #expect(second.replies.map(\.wait) == [wait])
        #expect(second.replies.map(\.reply) == [.opened(Self.reader.handle)])
        #expect(second.readinessChanged)
        #expect(pipe.waitIDs.isEmpty)
    }

    @Test func anInterruptedOfferFailsAndChangesNothing() {
        var pipe = machine()
        var step = Transition(at: Timestamp(seconds: 101, nanoseconds: 0))
        let offer = WaitOffer(WaitID(number: 1), interrupted: true)
        let (attempt, _) = pipe.open(Self.reader, access: .read, nonblocking: false, wait: offer, &step)
        #expect(attempt == .done(.failed(.interrupted)))
        #expect(pipe.readers == 0 && pipe.readerOpens.isEmpty && pipe.waitIDs.isEmpty)
    }

    @Test func theTimeOfAStepIsWhatTheBytesCarry() {
        var pipe = machine()
        var step = Transition(at: Timestamp(seconds: 101, nanoseconds: 0))
        _ = pipe.open(Self.reader, access: .readWrite, nonblocking: false, wait: WaitOffer(WaitID(number: 1), interrupted: false), &step)
        let lends = Lends()
        var write = Transition(at: Timestamp(seconds: 200, nanoseconds: 5))
        let decision = [UInt8]("hello".utf8).withUnsafeBytes {
            pipe.write(Self.reader, $0, offset: 0, nonblocking: false, wait: nil, &write, lend: lends)
        }
        #expect(decision == .attempt(.done(.written(5))))
        var read = Transition(at: Timestamp(seconds: 300, nanoseconds: 7))
        #expect(pipe.read(Self.reader, size: 10, offset: 0, nonblocking: false, wait: nil, &read, lend: lends) == .answered)
        #expect(lends.received.map(\.0) == [.caller])
        #expect(lends.received.map(\.1) == [Array("hello".utf8)])
        #expect(pipe.status.lastWrite == Timestamp(seconds: 200, nanoseconds: 5))
        #expect(pipe.status.lastRead == Timestamp(seconds: 300, nanoseconds: 7))
        #expect(pipe.status.created == Timestamp(seconds: 100, nanoseconds: 0))
    }

    @Test func aWriteThatMustWaitAsksTheExecutorToKeepItsBytes() throws {
        var pipe = machine(try PipeConfig(capacity: 4096))
        var step = Transition(at: Timestamp(seconds: 101, nanoseconds: 0))
        _ = pipe.open(Self.reader, access: .read, nonblocking: true, wait: WaitOffer(WaitID(number: 1), interrupted: false), &step)
        _ = pipe.open(Self.writer, access: .write, nonblocking: false, wait: WaitOffer(WaitID(number: 2), interrupted: false), &step)
        let lends = Lends()
        let big = [UInt8](repeating: 1, count: 5000)
        let offer = WaitOffer(WaitID(number: 3), interrupted: false)
        var write = Transition(at: Timestamp(seconds: 102, nanoseconds: 0))
        let decision = big.withUnsafeBytes { pipe.write(Self.writer, $0, offset: 0, nonblocking: false, wait: offer, &write, lend: lends) }
        #expect(decision == .mustKeep(taken: 0, atomic: false))
        // Without room to keep them, the write fails ENOBUFS and nothing waits.
        #expect(pipe.queueWrite(offer.id, open: Self.writer, kept: nil, taken: 0, atomic: false, &write, lend: lends)
                    == .done(.failed(.noBufferSpace)))
        #expect(pipe.waitIDs.isEmpty)
        #expect(Bool(pipe.isConsistent))
    }

    @Test func theFramingIsWhatTheDeliveryKeeps() {
        var pipe = machine()
        var step = Transition(at: Timestamp(seconds: 101, nanoseconds: 0))
        let lends = Lends()
        #expect(pipe.config.framing == .stream && pipe.config.delivery == .shared)
        #expect(pipe.apply(.delivery(.broadcast), &step, lend: lends) == nil)
        #expect(pipe.apply(.framing(.message), &step, lend: lends) == nil)
        #expect(pipe.config.framing == .message && pipe.config.delivery == .broadcast)
        #expect(pipe.delivery.inspectBroadcast { $0.messages != nil } == true)
        #expect(pipe.apply(.delivery(.shared), &step, lend: lends) == nil)
        #expect(pipe.config.framing == .message && pipe.config.delivery == .shared)
        #expect(pipe.delivery.oldestMessageRemaining == nil)
        #expect(Bool(pipe.isConsistent))
    }

    /// An open the registry admitted just before the mount stopped is refused by the pipe
    /// itself (the registry no longer holds its lock while the pipe decides).
    @Test(arguments: [false, true]) func aStoppedPipeRefusesOpens(waitingOnly: Bool) {
        var pipe = machine()
        let lends = Lends()
        var step = Transition(at: Timestamp(seconds: 101, nanoseconds: 0))
        _ = waitingOnly ? pipe.failWaitingOpens(&step, lend: lends) : pipe.closeForShutdown(&step, lend: lends)
        let offer = WaitOffer(WaitID(number: 1), interrupted: false)
        let (attempt, _) = pipe.open(Self.reader, access: .read, nonblocking: false, wait: offer, &step)
        #expect(attempt == .done(.failed(.noSuchAddressOrDevice)))
        #expect(pipe.readers == 0 && pipe.waitIDs.isEmpty)
    }
}
