/// poll(2) event bits, with Linux's values.
public struct PollEvents: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let input = PollEvents(rawValue: 0x001)      // POLLIN
    public static let output = PollEvents(rawValue: 0x004)     // POLLOUT
    public static let error = PollEvents(rawValue: 0x008)      // POLLERR
    public static let hangUp = PollEvents(rawValue: 0x010)     // POLLHUP
    public static let readNormal = PollEvents(rawValue: 0x040) // POLLRDNORM
    public static let writeNormal = PollEvents(rawValue: 0x100) // POLLWRNORM

    public var description: String {
        let names: [(PollEvents, String)] = [(.input, "IN"), (.output, "OUT"), (.error, "ERR"),
                                             (.hangUp, "HUP"), (.readNormal, "RDNORM"), (.writeNormal, "WRNORM")]
        let set = names.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "0" : set.joined(separator: "|")
    }
}
