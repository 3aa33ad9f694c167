import Foundation
import Testing

@testable import PotluckBench

/// Potluck in a DHT of 16 libtorrent nodes on loopback (`Tests/Interop/dht_lab.py`: a /24 each, the
/// settings a lab needs explained there), with no tracker anywhere and nothing in the magnet link but the
/// infohash: only the DHT leads from the link to the seeder.
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
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.50.1:\(port)",
            extra: ["--dht-bootstrap", nodes[2]], logFile: log)
        seeder.waitUntilListening(host: "127.0.50.1", port: port)
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
            (leecher.json["peers"] as? [String])?.contains("127.0.50.1:\(port)") == true, "\(leecher.json)")
        #expect(Interop.sameContents(data, fetched.appendingPathComponent("payload")))
    }
}
