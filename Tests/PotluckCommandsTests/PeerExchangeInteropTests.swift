import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// Peer exchange (BEP 11) with libtorrent, each peer in a network namespace of its own on a bridge
/// (`linknet.py`): PEX passes on routable addresses only, and libtorrent's only once a minute (its first
/// message, the whole list, comes a second after the handshake).
@Suite(.serialized) struct PeerExchangeInteropTests {
    /// Namespaces joined through a bridge.
    struct Links {
        let hub: String
        let peers: [(netns: String, address: String)]

        init(count: Int) throws {
            let made = try SeedInteropTests.harness(
                "linknet.py", ["create", "--peers", "\(count)", "--rate", "1g"])
            hub = try #require(made.json["hub"] as? String, "\(made.json)")
            let list = try #require(made.json["peers"] as? [[String: Any]])
            peers = list.compactMap { peer in
                (peer["netns"] as? String).flatMap { netns in (peer["address"] as? String).map { (netns, $0) }
                }
            }
        }

        func delete() {
            _ = try? SeedInteropTests.harness("linknet.py", ["delete", hub] + peers.map { $0.netns })
        }
    }

    static let ip = "/usr/sbin/ip"

    /// A harness tool's seeder in `netns`, ready once it printed its line.
    static func seeder(in netns: String, _ arguments: [String]) throws -> BackgroundProcess {
        try BackgroundProcess(
            ip, ["netns", "exec", netns, "/usr/bin/python3", Interop.tool("lt.py"), "seed"] + arguments,
            timeoutSeconds: 60)
    }

    /// Potluck is told about one libtorrent seeder (uploading slowly), which three other seeders dialled;
    /// its PEX message names them, and Potluck downloads from them too.
    @Test func potluckLearnsALibtorrentSwarmFromOnePeer() throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let seedDirectory = data.deletingLastPathComponent().path
        let links = try Links(count: 5)
        defer { links.delete() }
        let told = links.peers[1]
        let first = try Self.seeder(
            in: told.netns,
            [torrent, seedDirectory, "--bind", told.address, "--pex", "--upload-rate", "50000"])
        defer { first.stop() }
        let toldPeer = try #require((first.ready?["peers"] as? [String])?.first, "the seeder did not start")
        var others: [BackgroundProcess] = []
        defer { others.forEach { $0.stop() } }
        for other in links.peers[2...] {
            others.append(
                try Self.seeder(
                    in: other.netns,
                    [torrent, seedDirectory, "--bind", other.address, "--peer", toldPeer]))
        }
        let learned = others.compactMap { ($0.ready?["peers"] as? [String])?.first }
        #expect(learned.count == 3, "a seeder did not connect to \(toldPeer)")

        let target = root.appendingPathComponent("download")
        let potluck = links.peers[0]
        let result = try runPotluck(
            [
                "netns", "exec", potluck.netns, potluckExecutable().path, "download", "--verbose", torrent,
                "-o",
                target.path, "--peer", toldPeer, "--listen", "\(potluck.address):0", "--no-dht",
            ], executable: URL(fileURLWithPath: Self.ip))
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("pex: 3 peers from \(toldPeer)"), "\(result.error)")
        for peer in learned {
            #expect(
                result.error.contains("peer \(peer) totals: received "),
                "nothing from \(peer):\n\(result.error)")
        }
    }

    /// A libtorrent leecher told only about a Potluck seeder (uploading slowly) dials the libtorrent seeder
    /// that dialled Potluck, named in Potluck's PEX message, and downloads from it. (That seeder speaks no
    /// PEX: else it could dial the leecher at the same moment, and libtorrent may drop both connections
    /// as duplicates.)
    @Test func libtorrentLearnsAPeerFromPotlucksPeerExchange() throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let seedDirectory = data.deletingLastPathComponent()
        let links = try Links(count: 3)
        defer { links.delete() }
        let potluck = links.peers[0]
        let potluckPeer = "\(potluck.address):16881"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.ip)
        process.arguments = [
            "netns", "exec", potluck.netns, potluckExecutable().path, "seed", torrent, "--data",
            seedDirectory.path,
            "--listen", potluckPeer, "--max-upload-rate", "50K", "--no-dht", "--quiet", "--verbose",
        ]
        process.standardOutput = FileHandle.nullDevice
        let log = root.appendingPathComponent("seeder.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let other = links.peers[1]
        // It dials Potluck (again and again while Potluck checks its data), and is ready once connected.
        let seeder = try Self.seeder(
            in: other.netns,
            [torrent, seedDirectory.path, "--bind", other.address, "--peer", potluckPeer])
        defer { seeder.stop() }
        let otherPeer = try #require(
            (seeder.ready?["peers"] as? [String])?.first, "the libtorrent seeder did not connect to Potluck")

        let leecher = links.peers[2]
        let fetched = root.appendingPathComponent("libtorrent")
        let result = try runPotluck(
            [
                "netns", "exec", leecher.netns, "/usr/bin/python3", Interop.tool("lt.py"), "download",
                torrent,
                fetched.path, "--peer", potluckPeer, "--pex", "--timeout", "60",
            ], executable: URL(fileURLWithPath: Self.ip))
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") }
        let json =
            line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        #expect(result.status == 0, "\(result.output)\n\(result.error.suffix(2000))")
        #expect(Interop.sameContents(data, fetched.appendingPathComponent("payload")))
        let byPeer = json["bytes_by_peer"] as? [String: Int] ?? [:]
        #expect(
            byPeer[otherPeer] ?? 0 > 0,
            """
            nothing from \(otherPeer): \(byPeer)
            leecher: \(result.error.suffix(2000))
            Potluck: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")
            """)
    }
}
