import ArgumentParser
import Engine
import Foundation
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

    func validate() throws {
        for node in bootstrap {
            guard let colon = node.lastIndex(of: ":"), UInt16(node[node.index(after: colon)...]) != nil,
                colon > node.startIndex
            else { throw ValidationError("--dht-bootstrap \(node) is not HOST:PORT") }
        }
    }

    /// The engine's DHT settings: the socket on all addresses (the listening port when there is one),
    /// the routing table kept in `statePath`.
    func engineOptions(statePath: String?) -> DHTOptions? {
        guard !noDHT else { return nil }
        var options = DHTOptions(bindAddress: SocketAddress("0.0.0.0:0")!, statePath: statePath)
        if !bootstrap.isEmpty { options.bootstrap = bootstrap }
        return options
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
        (noDHT ? ["--no-dht"] : []) + bootstrap.flatMap { ["--dht-bootstrap", $0] }
    }
}
