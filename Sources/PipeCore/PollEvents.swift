/// poll(2) event bits, with Linux's values.
package struct PollEvents: OptionSet, Sendable, Hashable, CustomStringConvertible {
    package let rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }

    package static let input = PollEvents(rawValue: 0x001)      // POLLIN
    package static let output = PollEvents(rawValue: 0x004)     // POLLOUT
    package static let error = PollEvents(rawValue: 0x008)      // POLLERR
    package static let hangUp = PollEvents(rawValue: 0x010)     // POLLHUP
    package static let readNormal = PollEvents(rawValue: 0x040) // POLLRDNORM
    package static let writeNormal = PollEvents(rawValue: 0x100) // POLLWRNORM

    package var description: String {
        let names: [(PollEvents, String)] = [(.input, "IN"), (.output, "OUT"), (.error, "ERR"),
                                             (.hangUp, "HUP"), (.readNormal, "RDNORM"), (.writeNormal, "WRNORM")]
        let set = names.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "0" : set.joined(separator: "|")
    }
}
