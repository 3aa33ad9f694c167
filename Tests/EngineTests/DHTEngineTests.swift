import DHT
import Foundation
import Glibc
import Metainfo
import Testing
import TorrentModel
import URing

@testable import Engine

/// Potluck engines make a DHT of their own on loopback: a seeder announces a torrent, and a leecher
/// given only its magnet link (no peer, no tracker) and one node finds the seeder, fetches the metadata
/// and downloads.
@Suite struct DHTEngineTests {
    /// An engine whose DHT node (and listener) is at 127.0.`subnet`.1: a routing table keeps one node
    /// per address (and per /24 in a bucket), so each node of the lab has a /24 of its own, as on the
    /// internet; Linux answers on all of 127/8.
    static func engine(
        subnet: Int, listen: Bool, bootstrap: [SocketAddress], statePath: String? = nil
    ) throws -> Engine {
        try engine(
            binding: ["127.0.\(subnet).1:0"], listen: listen ? "127.0.\(subnet).1:0" : nil,
            bootstrap: bootstrap,
            statePath: statePath)
    }

    /// An engine whose DHT nodes, one per family, are bound to `binding`.
    static func engine(
        binding: [String], listen: String? = nil, bootstrap: [SocketAddress], statePath: String? = nil
    ) throws -> Engine {
        var options = EngineOptions()
        options.reactors = 1
        options.listenAddress = listen.flatMap { SocketAddress($0) }
        options.dht = DHTOptions(
            bindAddresses: binding.compactMap { SocketAddress($0) }, bootstrap: bootstrap.map { "\($0)" },
            statePath: statePath)
        return try Engine(options: options)
    }

    /// BEP 32 between engines: a dual-stack engine told only of an IPv4 node fills its IPv6 table from
    /// that node's answers (its queries ask for both families while the IPv6 table is thin), and keeps
    /// it. IPv6 nodes share ::1, which a table holds once: one IPv6 neighbour is all there is to find.
    @Test func anIPv6TableFillsThroughIPv4Answers() throws {
        let router = try Self.engine(binding: ["127.0.41.1:0", "[::1]:0"], bootstrap: [])
        defer { router.shutdown() }
        let addresses = try #require(router.dht?.boundAddresses)
        let routerV4 = try #require(addresses.first { $0.family == AF_INET })
        let routerV6 = try #require(addresses.first { $0.family == AF_INET6 })
        let ipv6Only = try Self.engine(binding: ["[::1]:0"], bootstrap: [routerV6])
        defer { ipv6Only.shutdown() }
        #expect(EngineTests.eventually { router.dhtNodeCount(family: .ipv6) == 1 })

        let newcomer = try Self.engine(binding: ["127.0.42.1:0", "[::1]:0"], bootstrap: [routerV4])
        defer { newcomer.shutdown() }
        #expect(EngineTests.eventually { newcomer.dhtNodeCount(family: .ipv4) == 1 })
        #expect(
            EngineTests.eventually { newcomer.dhtNodeCount(family: .ipv6) == 1 },
            "the IPv6 table learnt nothing from the IPv4 answers")
    }

    @Test func aMagnetLinkIsFoundThroughTheDHTAndDownloaded() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("dht-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("dht-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let first = try Self.engine(subnet: 11, listen: false, bootstrap: [])
        defer { first.shutdown() }
        let entry = try #require(first.dht?.boundAddresses.first)
        let others = try (12..<16).map { try Self.engine(subnet: $0, listen: false, bootstrap: [entry]) }
        defer { others.forEach { $0.shutdown() } }

        let metainfo = try EngineTests.makeTorrent(named: "d.bin", size: 300_000, seed: 3, in: seedDirectory)
        let seeder = try Self.engine(subnet: 16, listen: true, bootstrap: [entry])
        defer { seeder.shutdown() }
        var seeding = DownloadOptions(downloadDirectory: seedDirectory.path, peers: [])
        seeding.seedWhenComplete = true
        let seeded = try seeder.add(metainfo, options: seeding)
        #expect(EngineTests.eventually { seeder.snapshot(seeded)?.activity == .seeding })

        // The leecher knows one node, not the one the others joined through.
        let leecher = try Self.engine(
            subnet: 17, listen: false, bootstrap: [try #require(others[2].dht?.boundAddresses.first)])
        defer { leecher.shutdown() }
        let magnet = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(metainfo.wireInfoHash.hex)&dn=d.bin")
        let id = try leecher.add(
            magnet: magnet, options: DownloadOptions(downloadDirectory: leechDirectory.path, peers: []))
        #expect(
            EngineTests.eventually(60) { leecher.snapshot(id)?.activity == .finished },
            "\(String(describing: leecher.snapshot(id)?.activity)); leecher's table: \(leecher.dhtNodeCount() ?? -1)"
        )
        #expect(
            FileManager.default.contentsEqual(
                atPath: seedDirectory.appendingPathComponent("d.bin").path,
                andPath: leechDirectory.appendingPathComponent("d.bin").path))
        #expect((first.dhtNodeCount() ?? 0) >= 4)
    }

    @Test func theRoutingTableIsKeptForTheNextRun() throws {
        let directory = try EngineTests.temporaryDirectory("dht-state")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try Self.engine(subnet: 21, listen: false, bootstrap: [])
        defer { first.shutdown() }
        let entry = try #require(first.dht?.boundAddresses.first)
        let statePath = directory.appendingPathComponent("dht.dat").path
        let node = try Self.engine(subnet: 22, listen: false, bootstrap: [entry], statePath: statePath)
        #expect(EngineTests.eventually { (node.dhtNodeCount() ?? 0) >= 1 })
        node.shutdown()
        let saved = try DHTSavedState(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: statePath))))
        #expect(saved.nodes.map(\.endpoint.port) == [entry.port])
        // Back without any router: it joins through the node it kept.
        let again = try Self.engine(subnet: 22, listen: false, bootstrap: [], statePath: statePath)
        defer { again.shutdown() }
        #expect(EngineTests.eventually { (again.dhtNodeCount() ?? 0) >= 1 })
    }

    /// Thousands of datagrams of garbage and a flood of queries from one address: the node drops what it
    /// cannot read, answers within its rate limit, and goes on working for everyone else.
    @Test func garbageAndFloodsLeaveTheNodeWorking() throws {
        let node = try Self.engine(subnet: 31, listen: false, bootstrap: [])
        defer { node.shutdown() }
        let target = try #require(node.dht?.boundAddresses.first)
        let attacker = try Socket.bindUDP(on: SocketAddress("127.0.32.1:0")!)
        defer { close(attacker) }
        var generator = SeededRandom(seed: 42)
        var garbage: [[UInt8]] = (0..<3_000).map { index in
            (0..<(1 + index % 1400)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
        // Well-formed pings, far more than any node answers from one address.
        garbage += (0..<2_000).map { index in
            Array(
                "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:\(String(format: "%02x", index % 256))1:y1:qe"
                    .utf8)
        }
        // Mixed, so that pings still arrive when a busy machine lets the node's receive queue overflow
        // with garbage (all garbage first once left no ping to answer under load).
        garbage.shuffle(using: &generator)
        var answers = 0
        target.withSocketAddress { address, length in
            for datagram in garbage {
                _ = datagram.withUnsafeBytes {
                    sendto(attacker, $0.baseAddress, $0.count, 0, address, length)
                }
            }
        }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(attacker, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while buffer.withUnsafeMutableBytes({ recv(attacker, $0.baseAddress, $0.count, 0) }) > 0 {
            answers += 1
        }
        #expect(answers > 0 && answers < 200, "\(answers) answers to 2,000 pings from one address")

        // Someone else joins through it at once.
        let newcomer = try Self.engine(subnet: 33, listen: false, bootstrap: [target])
        defer { newcomer.shutdown() }
        #expect(EngineTests.eventually { (newcomer.dhtNodeCount() ?? 0) >= 1 })
    }
}
