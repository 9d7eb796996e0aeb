/// Replies and poll notifications decided under a lock, delivered after it is released.
///
/// Every core operation that can wake someone collects the wake-ups here while it holds
/// the pipe's lock and calls `deliver()` once the lock is gone, so no reply (a write to
/// /dev/fuse) is ever made with a lock held. Forgetting to deliver cannot strand a
/// request: a debug build stops where it happens, a release build delivers on the drop.
struct Deliveries: ~Copyable, Sendable {
    private var replies: [(any PipeWaiter, PipeReply)] = []
    private var notifications: [any PollNotifier] = []

    mutating func resume(_ waiter: any PipeWaiter, with reply: PipeReply) {
        replies.append((waiter, reply))
    }

    mutating func notify<S: Sequence>(_ notifiers: S) where S.Element == any PollNotifier {
        notifications.append(contentsOf: notifiers)
    }

    consuming func deliver() {
        let (replies, notifications) = (self.replies, self.notifications)
        (self.replies, self.notifications) = ([], [])
        Self.perform(replies, notifications)
    }

    private static func perform(_ replies: [(any PipeWaiter, PipeReply)], _ notifications: [any PollNotifier]) {
        for (waiter, reply) in replies { waiter.resume(reply) }
        for notifier in notifications { notifier.notify() }
    }

    deinit {
        guard !replies.isEmpty || !notifications.isEmpty else { return }
        assertionFailure("wake-ups dropped without being delivered")
        Self.perform(replies, notifications)
    }
}
