import SystemPackage

/// Live settings (`user.npfs.*`) and what changing them wakes.
extension PipeMachine where Buffer: ~Copyable {
    mutating func apply(_ setting: PipeSetting, _ step: inout Transition, lend: some Lender) -> Errno? {
        switch setting {
        case .capacity(let capacity):
            guard PipeConfig.validCapacities.contains(capacity) else { return .invalidArgument }
            // A waiting message goes in whole: a capacity it can never fit in would leave it,
            // and every writer queued behind it, waiting forever.
            guard !writeWaits.contains(where: { $0.atomic && $0.remaining > capacity }) else { return .resourceBusy }
            guard ring.setLimit(capacity) else { return .resourceBusy }
            settle(&step, lend: lend)   // more room lets waiting writers in
        case .mode(let newMode):
            mode = newMode
            if newMode == .ring { releaseWaitersForRing(&step, lend: lend) }
        case .overflow(let newOverflow):
            overflow = newOverflow
        case .delivery(let kind):
            guard kind != delivery.kind else { return nil }
            // Readers' positions in bytes already buffered, or queued, would be invented.
            guard ring.isEmpty && writeWaits.isEmpty else { return .resourceBusy }
            delivery = Delivery(kind, delivery.framing, readers: readerOpens)
        case .openTimeout(let seconds):
            // Opens that wait already keep the time they were given.
            openTimeout = seconds
        case .persist(let on):
            persist = on
        case .framing(let framing):
            guard framing != delivery.framing else { return nil }
            // Boundaries of bytes already buffered, or of queued writes, would be invented.
            guard ring.isEmpty && writeWaits.isEmpty else { return .resourceBusy }
            // Broadcast readers keep their cursors (and what they lost); only messages change.
            if delivery.withBroadcast({ $0.messages = framing == .message ? BroadcastMessages() : nil }) == nil {
                delivery = .shared(framing == .message ? MessageQueue() : nil)
            }
        }
        step.changeReadiness()
        return nil
    }

    /// `rm NAME`: a persisted pipe is persisted no more, and goes with its last close (or
    /// now, if it has none). EPERM for a pipe that is not persisted (each name is a pipe,
    /// and cannot be removed) and for a caller who is neither its owner nor root.
    mutating func unpersist(by caller: Caller) -> Errno? {
        guard persist, ownership.isOwned(by: caller) else { return .notPermitted }
        persist = false
        return nil
    }

    /// Switching to ring mode: nothing waits any more. Opens complete, reads take what is
    /// there (or nothing), writes overflow like any ring write and report their full length.
    mutating func releaseWaitersForRing(_ step: inout Transition, lend: some Lender) {
        for wait in openWaits { step.resume(wait.wait, with: .opened(wait.open.handle)) }
        openWaits.removeAll()
        for wait in writeWaits {
            overflowingStore(UnsafeRawBufferPointer(rebasing: wait.data.bytes[wait.taken...]), at: step.now)
            step.resume(wait.wait, with: .written(wait.takenBefore + wait.data.bytes.count))
        }
        writeWaits.removeAll()
        let reads = readWaits
        readWaits.removeAll()
        for wait in reads {
            if broadcast, available(to: wait.open) > 0 {
                giveBroadcast(wait.open, size: wait.size, to: .wait(wait.wait), &step, lend: lend)
            } else if broadcast || ring.isEmpty {
                step.resume(wait.wait, with: .data([]))
            } else {
                give(wait.size, to: .wait(wait.wait), &step, lend: lend)
            }
        }
    }
}
