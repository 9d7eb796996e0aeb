/// Replies and poll notifications decided under a lock, delivered after it is released.
///
/// Every core operation that can wake someone collects the wake-ups here while it holds
/// the pipe's lock and calls `deliver()` once the lock is gone, so no reply (a write to
/// /dev/fuse) is ever made with a lock held.
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
        for (waiter, reply) in replies { waiter.resume(reply) }
        for notifier in notifications { notifier.notify() }
    }
}
