/// A mount taking part in a pipe: every open and wait is named by its host and a number
/// the host gave it, so a machine's state says nothing a host could not send to another.
public struct HostID: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The one host of a mount that shares its pipes with nobody.
    public static let local = HostID(rawValue: 0)
}

/// One open of a pipe: its host and the handle the host gave it.
public struct OpenID: Hashable, Sendable {
    public let host: HostID
    public let handle: PipeHandle
    public init(host: HostID = .local, handle: PipeHandle) {
        self.host = host
        self.handle = handle
    }
}

/// One request that waits in a pipe (an open for its partner, a read for bytes, a write for
/// room): its host and a number the host gave it.
public struct WaitID: Hashable, Sendable {
    public let host: HostID
    public let number: UInt64
    public init(host: HostID = .local, number: UInt64) {
        self.host = host
        self.number = number
    }
}

/// A request offered the chance to wait: its id should it wait, and whether it was
/// interrupted already (then it fails EINTR instead of waiting, and changes nothing).
public struct WaitOffer: Sendable {
    public let id: WaitID
    public let interrupted: Bool
    public init(_ id: WaitID, interrupted: Bool) {
        self.id = id
        self.interrupted = interrupted
    }
}

/// Who bytes lent by a transition are for: the read being made (its answer is then
/// `.answered`), or a read that waited.
public enum ReadTarget: Sendable, Equatable {
    case caller
    case wait(WaitID)
}
