/// A mount taking part in a pipe: every open and wait is named by its host and a number
/// the host gave it, so a machine's state says nothing a host could not send to another.
package struct HostID: RawRepresentable, Hashable, Sendable {
    package let rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The one host of a mount that shares its pipes with nobody.
    package static let local = HostID(rawValue: 0)
}

/// One open of a pipe: its host and the handle the host gave it.
package struct OpenID: Hashable, Sendable {
    package let host: HostID
    package let handle: PipeHandle
    package init(host: HostID = .local, handle: PipeHandle) {
        self.host = host
        self.handle = handle
    }
}

/// One request that waits in a pipe (an open for its partner, a read for bytes, a write for
/// room): its host and a number the host gave it.
package struct WaitID: Hashable, Sendable {
    package let host: HostID
    package let number: UInt64
    package init(host: HostID = .local, number: UInt64) {
        self.host = host
        self.number = number
    }
}

/// A request offered the chance to wait: its id should it wait, and whether it was
/// interrupted already (then it fails EINTR instead of waiting, and changes nothing).
package struct WaitOffer: Sendable {
    package let id: WaitID
    package let interrupted: Bool
    package init(_ id: WaitID, interrupted: Bool) {
        self.id = id
        self.interrupted = interrupted
    }
}

/// Who bytes lent by a transition are for: the read being made (its answer is then
/// `.answered`), or a read that waited.
package enum ReadTarget: Sendable, Equatable {
    case caller
    case wait(WaitID)
}
