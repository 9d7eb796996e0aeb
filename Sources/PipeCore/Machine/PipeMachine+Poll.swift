/// Readiness for poll, select and epoll. Transitions that may change it say so
/// (`Transition.readinessChanged`); the executor then tells the open's pollers.
extension PipeMachine where Buffer: ~Copyable {
    /// pipe_poll's answer for one open; in ring mode writes never wait and nobody hangs up.
    /// With broadcast delivery, an open is readable when its own position has bytes ahead.
    func readiness(_ open: OpenID, access: AccessMode, hangUpVersion: UInt64) -> PollEvents {
        var events: PollEvents = []
        if access.reads {
            if broadcast ? available(to: open) > 0 : !ring.isEmpty { events.formUnion([.input, .readNormal]) }
            if waits && liveWriters == 0 && hangUpVersion != writerOpenCount { events.insert(.hangUp) }
        }
        if access.writes {
            // Writable when a PIPE_BUF write fits (the kernel: when a page slot is free).
            if !waits || ring.free >= min(PipeConfig.atomicWriteLimit, ring.limit) { events.formUnion([.output, .writeNormal]) }
            if waits && liveReaders == 0 { events.insert(.error) }
        }
        return events
    }
}
