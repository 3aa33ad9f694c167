import Foundation
import Testing

@testable import PotluckBench

/// `potluck download MAGNET`: the info dictionary fetched from real peers (BEP 9), then the download.
@Suite(.serialized) struct MagnetInteropTests {
    static func magnet(_ torrent: String, peers: [String] = [], trackers: [String] = []) throws -> String {
        var link = "magnet:?xt=urn:btih:\(try TrackerInteropTests.infoHash(torrent))&dn=payload"
        for peer in peers { link += "&x.pe=\(peer)" }
        for tracker in trackers {
            link += "&tr=" + (tracker.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? tracker)
        }
        return link
    }

    @Test func fromALibtorrentSeederTheLinkNames() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_000_000, 300_001, 5])
        defer { try? FileManager.default.removeItem(at: root) }
        // 16 KiB pieces: an info dictionary of several metadata pieces.
        let torrent = try Interop.create(data, pieceSize: "16K")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let peers = seeder.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 1)
        let target = root.appendingPathComponent("download")
        let saved = root.appendingPathComponent("saved.torrent").path
        let result = try runPotluck([
            "download", "--verbose", try Self.magnet(torrent, peers: peers), "-o", target.path,
            "--save-torrent", saved,
        ])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("metadata received: payload, 3 files"), "\(result.error)")
        #expect(try TrackerInteropTests.infoHash(saved) == TrackerInteropTests.infoHash(torrent))
    }

    /// No peer in the link: they come from the tracker it names.
    @Test func throughTheTrackerTheLinkNames() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [1_500_000, 40_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let torrent = try TrackerInteropTests.create(setup.data, trackers: [setup.http], name: "t.torrent")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, setup.data.deletingLastPathComponent().path, "--count",
            "2",
        ])
        defer { seeders.stop() }
        _ = try TrackerInteropTests.waitForSeeders(2, torrent: torrent)
        let target = setup.root.appendingPathComponent("download")
        let result = try runPotluck([
            "download", "--verbose", try Self.magnet(torrent, trackers: [setup.http]), "-o", target.path,
        ])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(setup.data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("tracker \(setup.http): started answered"), "\(result.error)")
    }

    /// The link names one peer, which offers the metadata but refuses every piece of it and names a
    /// libtorrent seeder in a `ut_pex` message: the metadata stage learns of the seeder that way, and
    /// the metadata and the payload come from it.
    @Test func theMetadataStageLearnsASeederByPeerExchange() throws {
        let (root, data) = try Interop.makePayload(sizes: [300_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let seederPeer = try #require(
            (seeder.ready?["peers"] as? [String])?.first, "the seeder did not start")
        let teller = try harnessProcess([
            Interop.tool("hostile_peer.py"), torrent, "metadata-pex", "--tell", seederPeer,
        ])
        defer { teller.stop() }
        let tellerPeer = try #require(teller.ready?["peer"] as? String)
        let target = root.appendingPathComponent("download")
        let result = try runPotluck(
            [
                "download", "--verbose", "--no-dht", "--no-lsd",
                try Self.magnet(torrent, peers: [tellerPeer]),
                "-o", target.path,
            ], timeoutSeconds: 120)  // without peer exchange here it would wait for peers forever
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("pex: 1 peers from \(tellerPeer)"), "\(result.error)")
    }

    /// A peer that sends wrong metadata and one that claims 4 GiB of it are dropped, each with its
    /// reason; the honest seeder supplies the metadata.
    @Test func liarsAboutTheMetadataAreDroppedAndAnHonestPeerSuppliesIt() throws {
        // 1,500 files: an info dictionary of several metadata pieces, so that more than one peer is asked.
        let (root, data) = try Interop.makePayload(sizes: Array(repeating: 100, count: 1_500))
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let liar = try harnessProcess([Interop.tool("hostile_peer.py"), torrent, "metadata-liar"])
        defer { liar.stop() }
        let huge = try harnessProcess([Interop.tool("hostile_peer.py"), torrent, "metadata-huge"])
        defer { huge.stop() }
        let honest = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { honest.stop() }
        let liarPeer = try #require(liar.ready?["peer"] as? String)
        let hugePeer = try #require(huge.ready?["peer"] as? String)
        let honestPeers = honest.ready?["peers"] as? [String] ?? []
        let target = root.appendingPathComponent("download")
        let result = try runPotluck([
            "download", "--verbose", try Self.magnet(torrent, peers: [liarPeer, hugePeer] + honestPeers),
            "-o",
            target.path,
        ])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        // Whether the liars are heard at all depends on whose extension handshake arrives first: the
        // honest seeder can deliver every piece before them (the unit tests and the MetadataFetch fuzzer
        // cover their catching deterministically). Heard, each is dropped for its lie and never trusted.
        let lines = result.error.split(separator: "\n")
        let hugeLines = lines.filter { $0.contains("peer \(hugePeer):") }
        #expect(hugeLines.allSatisfy { $0.contains("offers no metadata_size") }, "\(result.error)")
        let liarLines = lines.filter { $0.contains("peer \(liarPeer):") }
        #expect(liarLines.allSatisfy { $0.contains("sent wrong metadata") }, "\(result.error)")
        print(
            "metadata liars: \(hugeLines.first ?? "huge not heard"); \(liarLines.first ?? "liar not asked")")
    }

    /// BEP 53: a link's `so=` chooses the files; the one left out is not downloaded (only the piece it
    /// shares with the chosen one is written into it).
    @Test func theFilesTheLinkSelectsAreDownloaded() throws {
        let (root, data) = try Interop.makePayload(sizes: [800_000, 100_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)")
        seeder.waitUntilListening(host: "127.0.0.1", port: port)
        let target = root.appendingPathComponent("download")
        let result = try runPotluck([
            "download", "-q", try Self.magnet(torrent, peers: ["127.0.0.1:\(port)"]) + "&so=1", "-o",
            target.path,
        ])
        #expect(result.status == 0, "\(result.error)")
        let chosen = "payload/sub/file1.bin"
        #expect(
            FileManager.default.contents(atPath: target.appendingPathComponent(chosen).path)
                == FileManager.default.contents(atPath: data.appendingPathComponent("sub/file1.bin").path))
        let left = FileManager.default.contents(
            atPath: target.appendingPathComponent("payload/file0.bin").path)
        #expect(left != FileManager.default.contents(atPath: data.appendingPathComponent("file0.bin").path))
    }

    /// Potluck serves metadata to Potluck.
    @Test func fromAPotluckSeeder() throws {
        let (root, data) = try Interop.makePayload(sizes: [800_000, 1])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "16K")
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)")
        seeder.waitUntilListening(host: "127.0.0.1", port: port)
        let target = root.appendingPathComponent("download")
        let result = try runPotluck([
            "download", "-q", try Self.magnet(torrent, peers: ["127.0.0.1:\(port)"]), "-o", target.path,
        ])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }
}
