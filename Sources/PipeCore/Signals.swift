import Glibc

/// The one way npfs installs a signal handler (the daemon's knock, `npfs status --watch`,
/// the soak's clients): without SA_RESTART, so that a blocked read or write the signal
/// interrupts ends with EINTR and its caller can look at what the handler noted.
package enum Signals {
    /// Installs `handler` (which may only touch atomics) for each of `signals`.
    package static func install(_ signals: [Int32], _ handler: @convention(c) (Int32) -> Void) {
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = handler
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(number, &action, nil)
        }
    }
}
