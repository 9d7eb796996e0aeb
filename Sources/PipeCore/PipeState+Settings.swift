import SystemPackage

/// Live settings (`user.npfs.*`) and what changing them wakes.
extension PipeState {
    mutating func apply(_ setting: Pipe.Setting, deliveries: inout Deliveries) -> Errno? {
        switch setting {
        case .capacity(let capacity):
            guard PipeConfig.validCapacities.contains(capacity) else { return .invalidArgument }
            // A waiting message goes in whole: a capacity it can never fit in would leave it,
            // and every writer queued behind it, waiting forever.
            guard !writeWaiters.contains(where: { $0.atomic && $0.remaining > capacity }) else { return .resourceBusy }
            guard ring.setLimit(capacity) else { return .resourceBusy }
            config.capacity = capacity
            settle(&deliveries)   // more room lets waiting writers in
        case .mode(let mode):
            config.mode = mode
            if mode == .ring { releaseWaitersForRing(&deliveries) }
        case .overflow(let overflow):
            config.overflow = overflow
        case .delivery(let delivery):
            guard delivery != config.delivery else { return nil }
            // Readers' positions in bytes already buffered, or queued, would be invented.
            guard ring.isEmpty && writeWaiters.isEmpty else { return .resourceBusy }
            config.delivery = delivery
            cursors.reset(delivery == .broadcast ? readerHandles : [], at: base)
            broadcastMessages = BroadcastMessages()
            readMarks = ReadMarks(at: base)
        case .openTimeout(let seconds):
            // Opens that wait already keep the time they were given.
            config.openTimeout = seconds
        case .framing(let framing):
            guard framing != config.framing else { return nil }
            // Boundaries of bytes already buffered, or of queued writes, would be invented.
            guard ring.isEmpty && writeWaiters.isEmpty else { return .resourceBusy }
            config.framing = framing
            messages = MessageQueue()
            broadcastMessages = BroadcastMessages()
        }
        notifyPollers(&deliveries)
        return nil
    }

    /// Switching to ring mode: nothing waits any more. Opens complete, reads take what is
    /// there (or nothing), writes overflow like any ring write and report their full length.
    mutating func releaseWaitersForRing(_ deliveries: inout Deliveries) {
        for wait in openWaiters { deliveries.resume(wait.waiter, with: .opened(wait.handle)) }
        openWaiters.removeAll()
        for wait in writeWaiters {
            overflowingStore(UnsafeRawBufferPointer(rebasing: wait.data.bytes[wait.taken...]))
            deliveries.resume(wait.waiter, with: .written(wait.takenBefore + wait.data.bytes.count))
        }
        writeWaiters.removeAll()
        let reads = readWaiters
        readWaiters.removeAll()
        for wait in reads {
            if broadcast, let handle = wait.handle, available(to: handle) > 0 {
                giveBroadcast(handle, size: wait.size, deliveries: &deliveries) { wait.waiter.resume(reading: $0) }
            } else if broadcast || ring.isEmpty {
                deliveries.resume(wait.waiter, with: .data([]))
            } else {
                give(wait.size, deliveries: &deliveries) { wait.waiter.resume(reading: $0) }
            }
        }
    }
}
