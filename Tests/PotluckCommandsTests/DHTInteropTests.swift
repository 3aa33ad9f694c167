import Foundation
import Testing

@testable import PotluckBench

/// Potluck in a DHT of 16 libtorrent nodes (`Tests/Interop/dht_lab.py`: each in a network namespace of
/// its own on a /24 of its own, all on one bridge; the settings a lab needs explained there), with no
/// tracker anywhere and nothing in the magnet link but the infohash: only the DHT leads from the link to
/// the seeder. Potluck runs in the root namespace, which the lab routes to every node: the nodes see it
/// at the lab's `root_address`.
@Suite(.serialized) struct DHTInteropTests {
    /// A libtorrent seeder announced in the lab; Potluck, told one other node, finds it.
    @Test func potluckFindsALibtorrentSeederThroughTheDHT() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_500_000, 300_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let lab = try BackgroundProcess(
            "/usr/bin/python3",
            [
                Interop.tool("dht_lab.py"), "start", "--nodes", "16", "--seed", torrent,
                data.deletingLastPathComponent().path,
            ],
            timeoutSeconds: 120)
        defer { lab.stop() }
        let nodes = try #require(lab.ready?["nodes"] as? [String], "the lab did not start")
        let magnet = try #require(lab.ready?["magnet"] as? String)
        let target = root.appendingPathComponent("download")
        let cache = root.appendingPathComponent("cache")
        let result = try runPotluck(
            [
                "download", "--verbose", magnet, "-o", target.path, "--dht-bootstrap", nodes[7],
                "--save-torrent", root.appendingPathComponent("found.torrent").path,
            ], environment: ["XDG_CACHE_HOME": cache.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("metadata received"), "\(result.error)")
        // The routing table is kept for the next run.
        #expect(FileManager.default.fileExists(atPath: cache.appendingPathComponent("potluck/dht.dat").path))
    }

    /// Potluck seeds and announces in the lab; a libtorrent leecher given only the magnet link and one
    /// node finds it.
    @Test func aLibtorrentLeecherFindsAPotluckSeederThroughTheDHT() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_200_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let lab = try BackgroundProcess(
            "/usr/bin/python3", [Interop.tool("dht_lab.py"), "start", "--nodes", "16"], timeoutSeconds: 120)
        defer { lab.stop() }
        let nodes = try #require(lab.ready?["nodes"] as? [String], "the lab did not start")
        // Where the lab's nodes (and so the leecher, in a namespace of its own) see the root namespace.
        let host = try #require(lab.ready?["root_address"] as? String)
        let port = SeedInteropTests.freePort(on: host)
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "\(host):\(port)",
            extra: ["--dht-bootstrap", nodes[2]], logFile: log)
        seeder.waitUntilListening(host: host, port: port)
        let hash = try TrackerInteropTests.infoHash(torrent)
        let fetched = root.appendingPathComponent("libtorrent")
        let leecher = try SeedInteropTests.harness(
            "dht_lab.py",
            [
                "fetch", "magnet:?xt=urn:btih:\(hash)&dn=payload", fetched.path, "--bootstrap", nodes[11],
                "--timeout", "60",
            ])
        let seederLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(leecher.status == 0, "\(leecher.json)\n\(seederLog)")
        #expect(
            (leecher.json["peers"] as? [String])?.contains("\(host):\(port)") == true, "\(leecher.json)")
        #expect(Interop.sameContents(data, fetched.appendingPathComponent("payload")))
    }

    /// The same over IPv6 (BEP 32), both ways, in one network namespace whose loopback holds a
    /// unique-local address per lab node (a /48 each) and two for the peers under test: libtorrent's
    /// lab runs an IPv6 DHT there (a process per node, all in that namespace), and Potluck's IPv6 node (`--dht-ipv6 ADDRESS`) joins it through one node,
    /// finds a libtorrent seeder from a bare magnet link, then seeds and is found by a libtorrent
    /// leecher. Nothing reaches the IPv4 DHT, which Potluck also runs.
    @Test func theIPv6DHTLeadsBothWays() throws {
        let created = try SeedInteropTests.harness("netns.py", ["create"])
        let netns = try #require(created.json["netns"] as? String, "\(created.json)")
        defer { _ = try? SeedInteropTests.harness("netns.py", ["delete", netns]) }
        let ip = URL(fileURLWithPath: "/usr/sbin/ip")
        #expect(try CreateInteropTests.run(ip.path, ["-n", netns, "link", "set", "lo", "up"]).status == 0)
        for group in Array(1...16) + [0x64, 0x65] {
            let address = "fd00:0:\(String(group, radix: 16))::1/128"
            let added = try CreateInteropTests.run(
                ip.path, ["-n", netns, "addr", "add", address, "dev", "lo"])
            try #require(added.status == 0, "ip addr add \(address) in \(netns)")
        }
        let (root, data) = try Interop.makePayload(sizes: [1_500_000, 300_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let lab = try BackgroundProcess(
            ip.path,
            [
                "netns", "exec", netns, "/usr/bin/python3", Interop.tool("dht_lab.py"), "start", "--nodes",
                "16",
                "--base", "fd00:0:1::1", "--seed", torrent, data.deletingLastPathComponent().path,
            ],
            timeoutSeconds: 120)
        defer { lab.stop() }
        let nodes = try #require(lab.ready?["nodes"] as? [String], "the lab did not start")
        #expect(nodes.allSatisfy { $0.hasPrefix("[fd00:") })
        let magnet = try #require(lab.ready?["magnet"] as? String)

        let target = root.appendingPathComponent("download")
        let cache = root.appendingPathComponent("cache")
        let download = try runPotluck(
            [
                "netns", "exec", netns, "timeout", "60", potluckExecutable().path, "download", "--verbose",
                magnet, "-o", target.path, "--dht-bootstrap", nodes[7], "--dht-ipv6", "fd00:0:64::1",
            ], executable: ip, environment: ["XDG_CACHE_HOME": cache.path])
        #expect(download.status == 0, "\(download.error)")
        #expect(download.error.contains("dht: on [fd00:0:64::1]"), "\(download.error)")
        #expect(download.error.contains("peer [fd00:0:1::1]"), "\(download.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        // The IPv6 table is kept beside the IPv4 one.
        let saved = try Data(contentsOf: cache.appendingPathComponent("potluck/dht.dat"))
        #expect(String(decoding: saved, as: UTF8.self).contains("6:nodes6"))

        // Another torrent, which only Potluck has (the lab seeds the first, and the download announced it).
        let (seedRoot, seedData) = try Interop.makePayload(sizes: [1_200_000])
        defer { try? FileManager.default.removeItem(at: seedRoot) }
        let seedTorrent = try Interop.create(seedData, pieceSize: "32K")
        let log = root.appendingPathComponent("seeder.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let seeder = Process()
        seeder.executableURL = ip
        seeder.arguments = [
            "netns", "exec", netns, potluckExecutable().path, "seed", seedTorrent, "--data",
            seedData.deletingLastPathComponent().path, "--listen", "[fd00:0:64::1]:6881", "--dht-bootstrap",
            nodes[2],
            "--dht-ipv6", "fd00:0:64::1", "--verbose", "--quiet",
        ]
        seeder.standardError = try FileHandle(forWritingTo: log)
        seeder.standardOutput = FileHandle.nullDevice
        try seeder.run()
        defer {
            seeder.interrupt()
            seeder.waitUntilExit()
        }
        let hash = try TrackerInteropTests.infoHash(seedTorrent)
        let fetched = root.appendingPathComponent("libtorrent")
        let leecher = try CreateInteropTests.run(
            ip.path,
            [
                "netns", "exec", netns, "/usr/bin/python3", Interop.tool("dht_lab.py"), "fetch",
                "magnet:?xt=urn:btih:\(hash)&dn=payload", fetched.path, "--bootstrap", nodes[11], "--bind",
                "fd00:0:65::1", "--timeout", "60",
            ])
        let seederLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(leecher.status == 0, "\(leecher.output)\n\(seederLog)")
        #expect(leecher.output.contains("[fd00:0:64::1]:6881"), "\(leecher.output)")
        #expect(Interop.sameContents(seedData, fetched.appendingPathComponent("payload")))
    }
}
