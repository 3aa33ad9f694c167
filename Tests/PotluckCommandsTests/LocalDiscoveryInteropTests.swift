import Foundation
import Testing

@testable import PotluckBench

/// Peers that know nothing of each other but a torrent find each other by Local Service Discovery
/// (BEP 14) alone: each in a network namespace of its own, all on one bridge (`linknet.py`), with no
/// tracker, no DHT and no peer given. Potluck with Potluck, and with libtorrent both ways.
///
/// The namespaces have only their /24 routes, and need no more: a peer listening on one address joins
/// the group and sends on that address's interface (without one, joining fails with ENODEV, and a
/// veth holding two addresses would send from the other one, which peers cannot reach); Potluck
/// listening on every address joins and sends on every interface that takes multicast, a socket each.
@Suite(.serialized) struct LocalDiscoveryInteropTests {
    struct Peer {
        let netns: String
        let address: String
        let veth: String
    }

    /// Three namespaces on one bridge, deleted when `body` returns.
    static func withLAN(_ body: ([Peer]) throws -> Void) throws {
        try withLAN { peers, _ in try body(peers) }
    }

    /// The same, with the namespace that holds the bridge (`br0`).
    static func withLAN(_ body: ([Peer], String) throws -> Void) throws {
        let created = try SeedInteropTests.harness("linknet.py", ["create", "--peers", "3", "--rate", "1g"])
        let hub = try #require(created.json["hub"] as? String, "\(created.json)")
        let peers = try #require(created.json["peers"] as? [[String: String]]).compactMap { peer in
            peer["netns"].flatMap { netns in
                peer["address"].flatMap { address in
                    peer["veth"].map { Peer(netns: netns, address: address, veth: $0) }
                }
            }
        }
        defer { _ = try? SeedInteropTests.harness("linknet.py", ["delete", hub] + peers.map(\.netns)) }
        try #require(peers.count == 3)
        try body(peers, hub)
    }

    /// `potluck ARGUMENTS` inside `peer`'s namespace, stopped after `seconds`.
    static func potluck(
        in peer: Peer, _ arguments: [String], seconds: Int = 60
    ) throws -> (
        status: Int32, output: String, error: String
    ) {
        try runPotluck(
            ["netns", "exec", peer.netns, "timeout", "\(seconds)", potluckExecutable().path] + arguments,
            executable: URL(fileURLWithPath: "/usr/sbin/ip"))
    }

    /// Polls `condition` every 50 ms for up to `seconds`.
    static func eventually(_ seconds: Double = 30, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// A Potluck seeder in `peer`'s namespace, listening on `listen` (default: its address, port 6881).
    static func potluckSeeder(
        in peer: Peer, torrent: String, data: URL, log: URL, listen: String? = nil
    ) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = [
            "netns", "exec", peer.netns, potluckExecutable().path, "seed", torrent, "--data", data.path,
            "--listen", listen ?? "\(peer.address):6881", "--no-dht", "--verbose", "--quiet",
        ]
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func stop(_ process: Process) {
        process.interrupt()
        process.waitUntilExit()
    }

    static func contents(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    /// Gives each peer's veth the unique-local address fd00:77::N (N = 1, 2, 3), usable at once.
    static func addIPv6(_ peers: [Peer]) throws {
        for (index, peer) in peers.enumerated() {
            let added = try CreateInteropTests.run(
                "/usr/sbin/ip",
                ["-n", peer.netns, "addr", "add", "fd00:77::\(index + 1)/64", "dev", peer.veth, "nodad"])
            try #require(added.status == 0, "ip addr add in \(peer.netns)")
        }
    }

    /// Where peer `index` takes connections: its veth's IPv4 address, or over IPv6 the unique-local
    /// address `addIPv6` gave it; port 6881, written as a command line takes it.
    static func endpoint(_ peers: [Peer], _ index: Int, ipv6: Bool) -> (host: String, listen: String) {
        ipv6
            ? ("fd00:77::\(index + 1)", "[fd00:77::\(index + 1)]:6881")
            : (peers[index].address, "\(peers[index].address):6881")
    }

    /// A Potluck seeder, then a Potluck leecher given only the torrent: it announces, the seeder hears
    /// it and connects. Over IPv6 (BEP 14's group ff15::efc0:988f) both listen on their unique-local
    /// addresses only, so every announce and every connection is IPv6.
    @Test(arguments: [false, true])
    func twoPotluckPeersFindEachOther(overIPv6 ipv6: Bool) throws {
        let (root, data) = try Interop.makePayload(sizes: [1_000_000, 200_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        try Self.withLAN { peers in
            if ipv6 { try Self.addIPv6(peers) }
            let log = root.appendingPathComponent("seeder.log")
            let seeder = try Self.potluckSeeder(
                in: peers[0], torrent: torrent, data: data.deletingLastPathComponent(), log: log,
                listen: Self.endpoint(peers, 0, ipv6: ipv6).listen)
            defer { Self.stop(seeder) }
            #expect(Self.eventually { Self.contents(log).contains("seeding") }, "\(Self.contents(log))")
            let target = root.appendingPathComponent("download")
            let leecher = Self.endpoint(peers, 1, ipv6: ipv6).listen
            let result = try Self.potluck(
                in: peers[1], ["download", torrent, "-o", target.path, "--no-dht", "--listen", leecher, "-q"])
            #expect(result.status == 0, "\(result.error)\n\(Self.contents(log))")
            #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
            let group = ipv6 ? "lsd: on [ff15::efc0:988f]:6771" : "lsd: on"
            #expect(Self.contents(log).contains(group), "\(Self.contents(log))")
            #expect(Self.contents(log).contains("peer \(leecher)"), "\(Self.contents(log))")
        }
    }

    /// A libtorrent leecher with LSD on finds the Potluck seeder; over IPv6 each listens on its
    /// unique-local address only.
    @Test(arguments: [false, true])
    func aLibtorrentLeecherFindsAPotluckSeeder(overIPv6 ipv6: Bool) throws {
        let (root, data) = try Interop.makePayload(sizes: [1_500_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        try Self.withLAN { peers in
            if ipv6 { try Self.addIPv6(peers) }
            let log = root.appendingPathComponent("seeder.log")
            let seeder = try Self.potluckSeeder(
                in: peers[0], torrent: torrent, data: data.deletingLastPathComponent(), log: log,
                listen: Self.endpoint(peers, 0, ipv6: ipv6).listen)
            defer { Self.stop(seeder) }
            #expect(Self.eventually { Self.contents(log).contains("seeding") }, "\(Self.contents(log))")
            let fetched = root.appendingPathComponent("libtorrent")
            let host = Self.endpoint(peers, 2, ipv6: ipv6).host
            let leecher = try CreateInteropTests.run(
                "/usr/sbin/ip",
                [
                    "netns", "exec", peers[2].netns, "/usr/bin/python3", Interop.tool("lt.py"), "download",
                    torrent, fetched.path, "--bind", host, "--port", "6881", "--lsd", "--timeout", "60",
                ])
            #expect(leecher.status == 0, "\(leecher.output)\n\(Self.contents(log))")
            #expect(Interop.sameContents(data, fetched.appendingPathComponent("payload")))
            let peer = ipv6 ? "peer [\(host)]:" : "peer \(host):"
            #expect(Self.contents(log).contains(peer), "\(Self.contents(log))")
        }
    }

    /// A libtorrent seeder with LSD on; Potluck, listening on every address (so its namespace routes the
    /// group), announces and is found.
    @Test func potluckFindsALibtorrentSeeder() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_500_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        try Self.withLAN { peers in
            let seeder = try BackgroundProcess(
                "/usr/sbin/ip",
                [
                    "netns", "exec", peers[2].netns, "/usr/bin/python3", Interop.tool("lt.py"), "seed",
                    torrent,
                    data.deletingLastPathComponent().path, "--bind", peers[2].address, "--lsd",
                ], timeoutSeconds: 60)
            defer { seeder.stop() }
            try #require((seeder.ready?["peers"] as? [String])?.isEmpty == false, "no seeder")
            let target = root.appendingPathComponent("download")
            let result = try Self.potluck(
                in: peers[1], ["download", torrent, "-o", target.path, "--no-dht", "--verbose"])
            #expect(result.status == 0, "\(result.error)")
            #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
            // Whichever dialled (libtorrent, hearing Potluck's announce, usually does), the payload came from it.
            let fromSeeder = result.error.split(separator: "\n").contains {
                $0.hasPrefix("peer \(peers[2].address):") && $0.contains("received 1500000 ")
            }
            #expect(fromSeeder, "\(result.error)")
        }
    }

    /// A seed on two LANs at once: its namespace has an interface on each bridge (and no route for the
    /// group). Listening on every address, it announces on both, and a libtorrent leecher on each LAN,
    /// told nothing but the torrent, finds it.
    @Test func aSeedOnTwoLANsIsFoundOnBoth() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_200_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        try Self.withLAN { peers in
            try Self.withLAN { others, otherHub in
                try Self.addInterface(to: peers[0], onTheBridgeOf: otherHub, besides: others)
                let log = root.appendingPathComponent("seeder.log")
                let seeder = try Self.potluckSeeder(
                    in: peers[0], torrent: torrent, data: data.deletingLastPathComponent(), log: log,
                    listen: "0.0.0.0:6881")
                defer { Self.stop(seeder) }
                #expect(Self.eventually { Self.contents(log).contains("seeding") }, "\(Self.contents(log))")
                #expect(
                    Self.contents(log).components(separatedBy: "lsd: on 239.192.152.143:6771 via").count == 3,
                    "a socket on each LAN: \(Self.contents(log))")
                for (index, leecher) in [peers[2], others[2]].enumerated() {
                    let fetched = root.appendingPathComponent("libtorrent-\(index)")
                    let result = try CreateInteropTests.run(
                        "/usr/sbin/ip",
                        [
                            "netns", "exec", leecher.netns, "/usr/bin/python3", Interop.tool("lt.py"),
                            "download",
                            torrent, fetched.path, "--bind", leecher.address, "--port", "6881", "--lsd",
                            "--timeout", "60",
                        ])
                    #expect(result.status == 0, "\(result.output)\n\(Self.contents(log))")
                    #expect(Interop.sameContents(data, fetched.appendingPathComponent("payload")))
                    #expect(Self.contents(log).contains("peer \(leecher.address):"), "\(Self.contents(log))")
                }
            }
        }
    }

    /// A veth from `peer`'s namespace to the bridge in `hub`, with an address on that LAN's /24 (beside
    /// `lan`'s peers); it goes with the namespaces.
    static func addInterface(to peer: Peer, onTheBridgeOf hub: String, besides lan: [Peer]) throws {
        let name = "plkx\(getpid() % 100_000)"
        let subnet = lan[0].address.split(separator: ".").dropLast().joined(separator: ".")
        let commands: [[String]] = [
            ["link", "add", "\(name)a", "type", "veth", "peer", "name", "\(name)b"],
            ["link", "set", "\(name)a", "netns", peer.netns],
            ["link", "set", "\(name)b", "netns", hub],
            ["-n", hub, "link", "set", "\(name)b", "master", "br0"],
            ["-n", hub, "link", "set", "\(name)b", "up"],
            ["-n", peer.netns, "addr", "add", "\(subnet).50/24", "dev", "\(name)a"],
            ["-n", peer.netns, "link", "set", "\(name)a", "up"],
        ]
        for command in commands {
            let result = try CreateInteropTests.run("/usr/sbin/ip", command)
            if result.status != 0 {
                _ = try? CreateInteropTests.run("/usr/sbin/ip", ["link", "del", "\(name)a"])
            }
            try #require(result.status == 0, "ip \(command.joined(separator: " ")): \(result.output)")
        }
    }
}
