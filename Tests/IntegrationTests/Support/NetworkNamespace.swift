import Foundation
import Glibc

/// A network namespace of the test's own, as another machine on a cable would be: a veth
/// pair, this side `hostAddress`, the namespace's side `address`. Taking this side's link
/// down cuts the cable (packets are dropped, nothing is reset); `remove()` deletes the
/// namespace and both ends.
final class NetworkNamespace {
    let name: String
    /// This side's address (a server listening on it is reachable from the namespace).
    let hostAddress: String
    /// The namespace's address.
    let address: String
    private let link: String

    init() throws {
        let tag = "\(getpid() % 10_000)\(Int.random(in: 10...99))"
        name = "npfs\(tag)"
        link = "npfsv\(tag)"   // 15 bytes at most, a kernel limit on link names
        let subnet = "10.\(Int.random(in: 200...250)).\(Int.random(in: 0...255))"
        (hostAddress, address) = ("\(subnet).1", "\(subnet).2")
        let peer = link + "n"
        do {
            for command in [["ip", "netns", "add", name],
                            ["ip", "link", "add", link, "type", "veth", "peer", "name", peer],
                            ["ip", "link", "set", peer, "netns", name],
                            ["ip", "addr", "add", hostAddress + "/30", "dev", link],
                            ["ip", "link", "set", link, "up"],
                            ["ip", "-n", name, "addr", "add", address + "/30", "dev", peer],
                            ["ip", "-n", name, "link", "set", peer, "up"],
                            ["ip", "-n", name, "link", "set", "lo", "up"]] {
                try Self.must(command)
            }
        } catch {
            remove()
            throw error
        }
    }

    /// What runs a program inside the namespace (its network only: mounts stay shared).
    var launcher: [String] { ["nsenter", "--net=/run/netns/\(name)", "--"] }

    /// Cuts the cable (`up: false`) or mends it.
    func setLink(up: Bool) throws {
        try Self.must(["ip", "link", "set", link, up ? "up" : "down"])
    }

    /// Deletes the namespace, its end of the pair with it, and this end.
    func remove() {
        _ = try? ChildProcess.run(["ip", "netns", "delete", name], timeout: 30)
        _ = try? ChildProcess.run(["ip", "link", "delete", link], timeout: 30)
    }

    private static func must(_ command: [String]) throws {
        let result = try ChildProcess.run(command, timeout: 30)
        guard result.status == 0 else { throw TestFailure("\(command.joined(separator: " ")): \(result.output)") }
    }
}
