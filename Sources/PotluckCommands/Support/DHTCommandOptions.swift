import ArgumentParser
import Engine
import Foundation
import Glibc
import URing

/// The DHT options of `download`, `seed` and `daemon`.
struct DHTCommandOptions: ParsableArguments {
    @Flag(
        name: .customLong("no-dht"),
        help: "No DHT (BEP 5): peers come only from trackers, --peer and a magnet link's x.pe.")
    var noDHT = false

    @Option(
        name: .customLong("dht-bootstrap"),
        help: """
            A DHT node to join through, as HOST:PORT; repeatable. Default: the public routers \
            (router.bittorrent.com:6881 and others), after the nodes kept from the last run.
            """)
    var bootstrap: [String] = []

    @Option(
        name: .customLong("dht-ipv6"),
        help: """
            The IPv6 DHT (BEP 32), beside the IPv4 one: `auto` binds it to this host's first global \
            IPv6 address (none: no IPv6 DHT), an address binds it there, `off` runs the IPv4 DHT only.
            """)
    var ipv6 = "auto"

    func validate() throws {
        guard ["auto", "off"].contains(ipv6) || Self.ipv6Address(ipv6) != nil else {
            throw ValidationError("--dht-ipv6 \(ipv6) is not auto, off or an IPv6 address")
        }
        for node in bootstrap {
            guard let colon = node.lastIndex(of: ":"), UInt16(node[node.index(after: colon)...]) != nil,
                colon > node.startIndex
            else { throw ValidationError("--dht-bootstrap \(node) is not HOST:PORT") }
        }
    }

    /// The engine's DHT settings: the IPv4 socket on all addresses and the IPv6 one on one address, as
    /// BEP 32 asks (the listening port when there is one), the routing tables kept in `statePath`.
    func engineOptions(statePath: String?) -> DHTOptions? {
        guard !noDHT else { return nil }
        let ipv6Address =
            switch ipv6 {
            case "off": nil as SocketAddress?
            case "auto": Self.globalIPv6Address()
            default: Self.ipv6Address(ipv6)
            }
        var options = DHTOptions(
            bindAddresses: [SocketAddress("0.0.0.0:0")!] + (ipv6Address.map { [$0] } ?? []),
            statePath: statePath)
        if !bootstrap.isEmpty { options.bootstrap = bootstrap }
        return options
    }

    /// `text` as an IPv6 socket address with port 0 (brackets optional).
    static func ipv6Address(_ text: String) -> SocketAddress? {
        guard let address = SocketAddress(host: text, port: 0), address.family == AF_INET6 else { return nil }
        return address
    }

    /// The first global unicast IPv6 address of an interface that is up (2000::/3), Teredo's
    /// (2001::/32) only when there is no other: BEP 32 binds the IPv6 DHT to one, since a host often
    /// has several and the DHT needs the one others see to stay the same.
    static func globalIPv6Address() -> SocketAddress? {
        let global = Socket.ipv6InterfaceAddresses().map(\.address).filter { $0[0] & 0xe0 == 0x20 }
        let address = global.first { $0[0...3] != [0x20, 0x01, 0x00, 0x00] } ?? global.first
        return address.map { .ipv6(address: $0, port: 0) }
    }

    /// Where the command-line tools keep the DHT's table: `$XDG_CACHE_HOME/potluck/dht.dat`.
    static var cacheStatePath: String? {
        let environment = ProcessInfo.processInfo.environment
        if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") {
            return cache + "/potluck/dht.dat"
        }
        if let home = environment["HOME"], home.hasPrefix("/") { return home + "/.cache/potluck/dht.dat" }
        return nil
    }

    /// The same options as arguments, to hand on to another command.
    var arguments: [String] {
        (noDHT ? ["--no-dht"] : []) + bootstrap.flatMap { ["--dht-bootstrap", $0] } + ["--dht-ipv6", ipv6]
    }
}
