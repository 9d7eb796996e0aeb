import PipeCore
import Synchronization
import SystemPackage
import Testing

/// Issue 8, item 2: an open that waits for its partner longer than `open_timeout` fails
/// ETIMEDOUT and changes nothing.
@Suite struct OpenTimeoutTests {
    @Test func timeoutsParseAsDecimalSecondsAndShowAsGiven() {
        #expect(PipeConfig.parseTimeout("0") == 0)
        #expect(PipeConfig.parseTimeout("2") == 2)
        #expect(PipeConfig.parseTimeout("0.25") == 0.25)
        #expect(PipeConfig.parseTimeout("31536000") == PipeConfig.maximumOpenTimeout)
        for bad in ["", "-1", ".5", "5.", "1e3", "nan", "inf", "0x10", "1.2.3", "31536001", " 1", "99999999999999999999999"] {
            #expect(PipeConfig.parseTimeout(bad) == nil, "\(bad)")
        }
        #expect(PipeConfig.formatTimeout(0) == "0")
        #expect(PipeConfig.formatTimeout(2) == "2")
        #expect(PipeConfig.formatTimeout(0.25) == "0.25")
    }

    @Test func anExpiredOpenFailsAndTheNameIsNoPipeAgain() throws {
        let f = try Fixture()
        let (writer, attempt) = f.openWaiting(Fixture.write)
        #expect(attempt == .queued)
        #expect(f.registry.livePipes().count == 1, "the waiting open made the pipe")
        f.registry.expire(writer, inode: f.inode)
        #expect(writer.reply == .failed(.timedOut))
        #expect(f.registry.livePipes().isEmpty && f.registry.usage.pipes == 0 && f.registry.openCount == 0)
        f.registry.expire(writer, inode: f.inode)
        #expect(writer.replies.count == 1, "expiring an answered open does nothing")
    }

    /// The client of a withdrawn open, told ETIMEDOUT (or EINTR), never finds the pipe its
    /// open made still listed: the registry forgets the open before the answer goes out
    /// (it did so just after, and a listing at once could show the pipe).
    @Test func aWithdrawnOpenIsForgottenBeforeItsAnswer() throws {
        let f = try Fixture()
        for reason in [Withdrawal.timedOut, .interrupted] {
            let waiter = ObservingWaiter { f.registry.livePipes().count }
            #expect(f.registry.open(f.inode, flags: Fixture.write, caller: .alice, waiter: waiter) == .queued)
            if reason == .timedOut { f.registry.expire(waiter, inode: f.inode) } else { f.registry.interrupt(waiter, inode: f.inode) }
            #expect(waiter.answers.count == 1)
            #expect(waiter.answers.first?.reply == .failed(reason == .timedOut ? .timedOut : .interrupted))
            #expect(waiter.answers.first?.livePipes == 0, "the pipe was still live when the open was answered")
        }
    }

    @Test func anExpiredOpenLeavesTheOthersAsTheyWere() throws {
        let f = try Fixture()
        let (first, _) = f.openWaiting(Fixture.read)
        try f.registry.setAttribute(.openTimeout, to: "0.5", of: f.inode, caller: .alice)
        #expect(try f.registry.attribute(.openTimeout, of: f.inode, caller: .alice) == "0.5")
        #expect(f.registry.openTimeout(of: f.inode) == 0.5)
        let (second, _) = f.openWaiting(Fixture.read)
        #expect(f.status?.readers == 2)
        f.registry.expire(second, inode: f.inode)
        #expect(second.reply == .failed(.timedOut))
        #expect(first.reply == nil, "the other open still waits")
        #expect(f.status?.readers == 1)
        let writer = try f.open(Fixture.write)
        guard case .opened(let reader)? = first.reply else { throw FixtureError.unexpected("the first reader did not open") }
        #expect(f.write(writer, Array("hi".utf8)) == .done(.written(2)))
        #expect(f.read(reader, 10) == .done(.data(Array("hi".utf8))))
        #expect(f.status?.readers == 1 && f.status?.writers == 1)
        #expect(throws: Errno.invalidArgument) { try f.registry.setAttribute(.openTimeout, to: "soon", of: f.inode, caller: .alice) }
    }

    @Test func anInterruptStillAnswersEINTR() throws {
        let f = try Fixture()
        let (reader, _) = f.openWaiting(Fixture.read)
        reader.markInterrupted()
        f.registry.interrupt(reader, inode: f.inode)
        #expect(reader.reply == .failed(.interrupted))
    }
}

/// A waiter that records, with each answer, what `observe` saw at that moment.
final class ObservingWaiter: PipeWaiter {
    private let observe: @Sendable () -> Int
    private let state = Mutex<[(reply: PipeReply, livePipes: Int)]>([])

    init(_ observe: @escaping @Sendable () -> Int) { self.observe = observe }

    var isInterrupted: Bool { false }
    func resume(_ reply: PipeReply) {
        let seen = observe()
        state.withLock { $0.append((reply, seen)) }
    }
    var answers: [(reply: PipeReply, livePipes: Int)] { state.withLock { $0 } }
}
