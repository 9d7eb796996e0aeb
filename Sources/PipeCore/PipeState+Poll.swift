/// Readiness for poll, select and epoll, and the notifications that tell the kernel to ask again.
extension PipeState {
    mutating func poll(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64,
                       notifier: (any PollNotifier)?) -> PollEvents {
        if let notifier { pollers[handle] = notifier }
        return readiness(handle, access: access, hangUpVersion: hangUpVersion)
    }

    /// pipe_poll's answer for one open; in ring mode writes never wait and nobody hangs up.
    /// With broadcast delivery, an open is readable when its own position has bytes ahead.
    func readiness(_ handle: PipeHandle, access: AccessMode, hangUpVersion: UInt64) -> PollEvents {
        var events: PollEvents = []
        if access.reads {
            if broadcast ? available(to: handle) > 0 : !ring.isEmpty { events.formUnion([.input, .readNormal]) }
            if waits && liveWriters == 0 && hangUpVersion != writerOpens { events.insert(.hangUp) }
        }
        if access.writes {
            // Writable when a PIPE_BUF write fits (the kernel: when a page slot is free).
            if !waits || ring.free >= min(Pipe.atomicWriteLimit, ring.limit) { events.formUnion([.output, .writeNormal]) }
            if waits && liveReaders == 0 { events.insert(.error) }
        }
        return events
    }

    /// Something changed that may change readiness: tell every poller once.
    mutating func notifyPollers(_ deliveries: inout Deliveries) {
        guard !pollers.isEmpty else { return }
        deliveries.notify(pollers.values)
        pollers.removeAll()
    }
}
