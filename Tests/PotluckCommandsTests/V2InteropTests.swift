import Foundation
import Glibc
import Metainfo
import Testing

@testable import PotluckBench
@testable import PotluckCommands

/// v2-only torrents (BEP 52) between Potluck and libtorrent, over every shape of v2 piece: a file's
/// short last piece of one leaf, of several, of whole blocks; files of one block, shorter than a piece,
/// of exactly one piece; an empty file; nested folders (issue #19).
@Suite(.serialized) struct V2InteropTests {
    static let pieceLengths = [16 * 1024, 64 * 1024, 4 * 1024 * 1024]
    /// What Potluck seeds to libtorrent: v2 in every piece length, hybrid in the smallest and largest.
    static let seededFormats: [(String, Int)] =
        pieceLengths.map { ("v2", $0) } + [("hybrid", 16 * 1024), ("hybrid", 4 * 1024 * 1024)]

    /// A folder `payload` of random files of every shape for `pieceLength`, in a fresh scratch folder.
    static func makeShapes(pieceLength: Int) throws -> (root: URL, data: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-v2-\(UUID())")
        let data = root.appendingPathComponent("seed/payload")
        let files = [
            ("lastPieceOneLeaf", 2 * pieceLength + 896),
            ("nested/lastPieceTwoLeaves", pieceLength + 17280),
            ("nested/deeper/lastPieceOfBlocks", pieceLength + max(pieceLength / 2, 16384)),
            ("nested/deeper/exactlyOnePiece", pieceLength),
            ("oneBlock", 16384),
            ("nested/oneShortBlock", 1000),
            ("shorterThanAPiece", pieceLength / 2 + 5),
            ("nested/empty", 0),
        ]
        var generator = SystemRandomNumberGenerator()
        for (path, length) in files {
            let file = data.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            var bytes = [UInt8](repeating: 0, count: length)
            for start in stride(from: 0, to: length, by: 8) {
                withUnsafeBytes(of: generator.next()) { word in
                    for i in 0..<min(8, length - start) { bytes[start + i] = word[i] }
                }
            }
            try Data(bytes).write(to: file)
        }
        return (root, data)
    }

    /// `lt.py create --v2` (or `--hybrid`) of `data` into `torrent`.
    static func libtorrentCreate(
        _ data: URL, pieceLength: Int, torrent: String, format: String = "v2"
    ) throws -> [String: Any] {
        let made = try SeedInteropTests.harness(
            "lt.py", ["create", data.path, "-o", torrent, "--\(format)", "--piece-size", String(pieceLength)])
        #expect(made.status == 0, "\(made.json)")
        return made.json
    }

    /// `potluck download --verbose`, killed after `timeoutSeconds`: a piece that never verifies is
    /// retried without end now that nobody is banned for it. Returns the exit status and the log.
    static func download(
        _ torrent: String, into directory: URL, peers: [String], timeoutSeconds: Int = 60
    ) throws -> (status: Int32, log: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments =
            [
                String(timeoutSeconds), potluckExecutable().path, "download", "-q", "--verbose",
                "--no-trackers", torrent,
            ]
            + ["-o", directory.path] + peers.flatMap { ["--peer", $0] }
        let log = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = log
        try process.run()
        let text = String(decoding: readAll(log.fileHandleForReading), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// Potluck's creator writes the torrent libtorrent writes: the same info dictionary (so the same
    /// `pieces root`s and v2 infohash) and the same piece layers.
    @Test(arguments: pieceLengths)
    func potluckCreatesTheSameV2TorrentAsLibtorrent(pieceLength: Int) throws {
        let (root, data) = try Self.makeShapes(pieceLength: pieceLength)
        defer { try? FileManager.default.removeItem(at: root) }
        let theirs = root.appendingPathComponent("libtorrent.torrent").path
        let made = try Self.libtorrentCreate(data, pieceLength: pieceLength, torrent: theirs)
        let ours = root.appendingPathComponent("potluck.torrent").path
        let created = try runPotluck([
            "create", "-q", "--v2", "--piece-size", "\(pieceLength / 1024)K", "-o", ours, data.path,
        ])
        #expect(created.status == 0, "\(created.error)")

        let potluck = try Metainfo(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: ours))))
        let libtorrent = try Metainfo(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: theirs))))
        #expect(potluck.infoHashV2?.description == made["infohash_v2"] as? String)
        #expect(potluck.infoHashV2 == libtorrent.infoHashV2)
        #expect(potluck.files.map(\.path) == libtorrent.files.map(\.path))
        for index in potluck.files.indices {
            #expect(potluck.files[index].piecesRoot == libtorrent.files[index].piecesRoot)
            #expect(
                potluck.pieceLayer(ofFile: index) == libtorrent.pieceLayer(ofFile: index),
                "\(potluck.files[index].path)")
        }
        #expect(potluck.files.indices.contains { potluck.pieceLayer(ofFile: $0) != nil }, "no layer compared")
    }

    /// Regression for issue #19: every piece of a libtorrent v2 torrent verifies on the first try, and
    /// the files come out byte-identical. A hybrid too, whose SHA-1 covers the padding not asked for.
    @Test(arguments: pieceLengths.map { ("v2", $0) } + [("hybrid", 4 * 1024 * 1024)])
    func downloadsALibtorrentTorrentFromALibtorrentSeeder(format: String, pieceLength: Int) throws {
        let (root, data) = try Self.makeShapes(pieceLength: pieceLength)
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = root.appendingPathComponent("v2.torrent").path
        _ = try Self.libtorrentCreate(data, pieceLength: pieceLength, torrent: torrent, format: format)
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let peers = seeder.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 1, "libtorrent did not start seeding")

        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target, peers: peers)
        #expect(result.status == 0, "\(result.log)")
        #expect(!result.log.contains("failed its hash check"), "\(result.log)")
        #expect(!result.log.contains("banned"), "\(result.log)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(
            FileManager.default.fileExists(atPath: target.appendingPathComponent("payload/nested/empty").path)
        )
        // The alignment gaps are not asked for: at most the rest of each file's last block comes with its
        // data (with 4 MiB pieces the gaps are 22 MB of a 46 MB address space).
        let sizes = try FileManager.default.subpathsOfDirectory(atPath: data.path).compactMap {
            try FileManager.default.attributesOfItem(atPath: data.appendingPathComponent($0).path)[.size]
                as? Int
        }
        let received = try #require(Self.receivedPayloadBytes(result.log), "\(result.log)")
        #expect(received <= sizes.reduce(0, +) + sizes.count * 16384, "received \(received) bytes")
    }

    /// A v2-only magnet link (`urn:btmh`, no `urn:btih`): the info dictionary holds only each file's root,
    /// so the piece layers come from the libtorrent seeder by BEP 52 hash requests (a file of 611 pieces
    /// takes two runs of 512), each checked against its root; the download is byte-identical and the
    /// saved .torrent carries the same layers as libtorrent's.
    @Test func aV2OnlyMagnetLinkFetchesItsPieceLayersFromALibtorrentSeeder() throws {
        let pieceLength = 16 * 1024
        let (root, data) = try Self.makeShapes(pieceLength: pieceLength)
        defer { try? FileManager.default.removeItem(at: root) }
        try Self.addLongFile(to: data, pieceLength: pieceLength)
        let torrent = root.appendingPathComponent("v2.torrent").path
        let made = try Self.libtorrentCreate(data, pieceLength: pieceLength, torrent: torrent)
        let hash = try #require(made["infohash_v2"] as? String)
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeder.stop() }
        let peer = try #require(
            (seeder.ready?["peers"] as? [String])?.first, "libtorrent did not start seeding")

        let target = root.appendingPathComponent("download")
        let saved = root.appendingPathComponent("saved.torrent")
        let result = try runPotluck(
            [
                "download", "--verbose", "magnet:?xt=urn:btmh:1220\(hash)&dn=payload&x.pe=\(peer)", "-o",
                target.path, "--no-dht", "--no-lsd", "--save-torrent", saved.path,
            ], timeoutSeconds: 120)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("piece layers received: 4 files"), "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        let ours = try Metainfo(bytes: Array(try Data(contentsOf: saved)))
        let theirs = try Metainfo(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: torrent))))
        #expect(ours.hasPieceLayers && ours.infoHashV2 == theirs.infoHashV2)
        for index in theirs.files.indices {
            #expect(
                ours.pieceLayer(ofFile: index) == theirs.pieceLayer(ofFile: index),
                "\(theirs.files[index].path)")
        }
    }

    /// The payload bytes the verbose log's one `totals` line says the peer sent.
    static func receivedPayloadBytes(_ log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("totals: received ") }),
            let rest = line.split(separator: "totals: received ").last
        else { return nil }
        return rest.split(separator: " ").first.flatMap { Int($0) }
    }

    /// A Potluck v2 or hybrid torrent seeded by `potluck seed` (which rechecks the data first) to a
    /// libtorrent leecher, which verifies every piece against the torrent's hashes (a hybrid's SHA-1
    /// pieces, padding included, and its SHA-256 trees).
    @Test(arguments: seededFormats)
    func libtorrentDownloadsAPotluckTorrentFromAPotluckSeeder(format: String, pieceLength: Int) throws {
        let (root, data) = try Self.makeShapes(pieceLength: pieceLength)
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = root.appendingPathComponent("\(format).torrent").path
        let created = try runPotluck([
            "create", "-q", "--\(format)", "--piece-size", "\(pieceLength / 1024)K", "-o", torrent, data.path,
        ])
        #expect(created.status == 0, "\(created.error)")
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)")
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        let target = root.appendingPathComponent("libtorrent")
        let libtorrent = try SeedInteropTests.harness(
            "lt.py",
            ["download", torrent, target.path, "--peer", "127.0.0.1:\(port)", "--timeout", "60", "--recheck"])
        #expect(libtorrent.status == 0, "\(libtorrent.json)")
        #expect(libtorrent.json["failed_bytes"] as? Int == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }

    /// Potluck creates a `format` torrent of `data` and seeds it; a libtorrent leecher given only its
    /// v2-only link (`urn:btmh`) downloads it into `root/libtorrent` and rechecks it. Returns
    /// libtorrent's report and the seeder's verbose log.
    static func libtorrentByV2Link(
        from data: URL, root: URL, format: String, pieceLength: Int
    ) throws -> (status: Int32, json: [String: Any], seederLog: String) {
        let torrent = root.appendingPathComponent("\(format).torrent").path
        let created = try runPotluck([
            "create", "-q", "--\(format)", "--piece-size", "\(pieceLength / 1024)K", "-o", torrent, data.path,
        ])
        #expect(created.status == 0, "\(created.error)")
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)",
            logFile: log)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)
        let libtorrent = try SeedInteropTests.harness(
            "lt.py",
            [
                "download", torrent, root.appendingPathComponent("libtorrent").path, "--magnet-v2", "--peer",
                "127.0.0.1:\(port)", "--timeout", "60", "--recheck",
            ])
        return (libtorrent.status, libtorrent.json, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// A file of 611 pieces beside the shapes: its piece layer takes two hash requests of 512.
    static func addLongFile(to data: URL, pieceLength: Int) throws {
        try Data(
            (0..<(611 * pieceLength - 1000)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        )
        .write(to: data.appendingPathComponent("big"))
    }

    /// A libtorrent leecher that knows a Potluck hybrid only by its v2 infohash (a `urn:btmh` magnet
    /// link) dials with the truncated v2 infohash (BEP 52): the seeder takes it as the same swarm,
    /// serves the info dictionary and the pieces, and libtorrent verifies them all.
    @Test func libtorrentJoinsAPotluckHybridThroughItsV2Swarm() throws {
        let (root, data) = try Self.makeShapes(pieceLength: 64 * 1024)
        defer { try? FileManager.default.removeItem(at: root) }
        let libtorrent = try Self.libtorrentByV2Link(
            from: data, root: root, format: "hybrid", pieceLength: 64 * 1024)
        #expect(libtorrent.status == 0, "\(libtorrent.json)")
        #expect(libtorrent.json["failed_bytes"] as? Int == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, root.appendingPathComponent("libtorrent/payload")))
        #expect(!libtorrent.seederLog.contains("protocol: infohash"), "\(libtorrent.seederLog)")
    }

    /// The other way: a libtorrent leecher given only a v2-only link to a Potluck v2 seeder asks it for
    /// the piece layers (BEP 52 hash requests, with proofs up to the root) and gets them, then every piece.
    @Test func aLibtorrentLeecherGetsThePieceLayersFromAPotluckSeeder() throws {
        let (root, data) = try Self.makeShapes(pieceLength: 16 * 1024)
        defer { try? FileManager.default.removeItem(at: root) }
        try Self.addLongFile(to: data, pieceLength: 16 * 1024)
        let libtorrent = try Self.libtorrentByV2Link(
            from: data, root: root, format: "v2", pieceLength: 16 * 1024)
        let seederLog = libtorrent.seederLog
        #expect(libtorrent.status == 0, "\(libtorrent.json)\n\(seederLog)")
        #expect(libtorrent.json["failed_bytes"] as? Int == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, root.appendingPathComponent("libtorrent/payload")))
        // libtorrent can check a file whole against its root without layers: the log shows it asked.
        #expect(seederLog.contains(": answered with "), "\(seederLog)")
        #expect(!seederLog.contains(": refused"), "\(seederLog)")
    }
}
