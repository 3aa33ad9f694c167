import Foundation
import Hashing
import Metainfo
import Testing
import TorrentModel

@testable import Engine
@testable import PotluckDaemon

/// The state folder keeps torrents whole and in the order they were added.
@Suite struct StateFolderTests {
    @Test func storedTorrentsComeBackOldestFirstAndForgottenOnesDoNot() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-state-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let state = try StateFolder(root: root.path)
        let hashes = (1...3).map { InfoHash(Array(repeating: UInt8($0), count: 20))! }
        for (index, hash) in hashes.enumerated() {
            var settings = StoredTorrent(downloadDirectory: "/data/\(index)", addedDate: 1_000)
            settings.order = 2 - index
            settings.labels = ["label \(index)"]
            try state.store(metainfo: [UInt8(index)], settings: settings, hash: hash)
        }
        state.forget(hashes[1])
        // A torrent whose settings were written but whose bytes are missing is skipped, and said so.
        try Data("{}".utf8).write(
            to: URL(fileURLWithPath: state.settingsFile(InfoHash(Array(repeating: 9, count: 20))!)))
        var problems: [String] = []
        let stored = state.storedTorrents { problems.append($0) }
        #expect(stored.map(\.settings.downloadDirectory) == ["/data/2", "/data/0"])
        #expect(
            stored.map { stored -> [UInt8] in
                if case .metainfo(let bytes) = stored.source { return bytes }
                return []
            } == [[2], [0]])
        #expect(stored.first?.settings.labels == ["label 2"])
        #expect(problems.count == 1)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: root.path + "/torrents")
            .filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
    }

    /// Numbers near the largest integer in a damaged state file (each overflowed the first addition
    /// made to it: a crash at every start) come back held within bounds, and an announce list's
    /// invariants are restored.
    @Test func hugeNumbersInStateFilesAreHeldWithinBounds() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-state-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let state = try StateFolder(root: root.path)
        let hash = InfoHash(Array(repeating: 4, count: 20))!
        try state.store(
            metainfo: [1], settings: StoredTorrent(downloadDirectory: "/data", addedDate: 1), hash: hash)
        // The file as the daemon writes it, then numbers near the largest integer put in.
        var json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: state.settingsFile(hash)))) as? [String: Any]
            ?? [:]
        for key in ["addedDate", "order", "uploadedEver", "secondsSeeding", "queuePosition"] {
            json[key] = Int.max
        }
        json["activityDate"] = Int.min
        json["announceList"] = [
            "nextID": Int.max,
            "trackers": [
                ["id": Int.max, "tier": 0, "announce": "http://a/announce"],
                ["id": 3, "tier": Int.max, "announce": "http://b/announce"],
                ["id": 3, "tier": 5, "announce": "http://c/announce"],
                ["id": 4, "tier": 9, "announce": "http://b/announce"],
            ],
        ]
        try JSONSerialization.data(withJSONObject: json).write(
            to: URL(fileURLWithPath: state.settingsFile(hash)))
        let max = Int.max
        try Data(
            #"{"sessionCount":\#(max),"uploadedBytes":\#(max),"downloadedBytes":0,"filesAdded":0,"secondsActive":0}"#
                .utf8
        ).write(
            to: root.appendingPathComponent("stats.json"))

        var problems: [String] = []
        let stored = state.storedTorrents { problems.append($0) }
        let settings = try #require(stored.first?.settings, "\(problems)")
        #expect(settings.addedDate == StoredTorrent.dates.upperBound && settings.activityDate == 0)
        #expect(settings.order == Int(Int32.max) && settings.queuePosition == Int(Int32.max))
        #expect(settings.uploadedEver == 1 << 60 && settings.secondsSeeding == 1 << 60)
        let list = try #require(settings.announceList)
        #expect(list.trackers == [AnnounceList.Tracker(id: 3, tier: 0, announce: "http://b/announce")])
        #expect(list.nextID == Int(Int32.max))
        var totals = state.loadTotals()
        totals.sessionCount += 1
        #expect(totals.sessionCount == (1 << 60) + 1 && totals.uploadedBytes == 1 << 60)
    }

    @Test func scrapeURLsAndSiteNamesFollowTransmission() {
        #expect(
            DaemonTorrent.scrapeURL("http://t.example.org:6969/announce")
                == "http://t.example.org:6969/scrape")
        #expect(
            DaemonTorrent.scrapeURL("http://t.example.org/announce.php?k=1")
                == "http://t.example.org/scrape.php?k=1")
        #expect(DaemonTorrent.scrapeURL("udp://t.example.org:1337") == "")
        #expect(DaemonTorrent.siteName("tracker.example.org") == "example")
    }
}

/// A torrent kept under another name than its infohash (a hybrid that a v2 link added, as an earlier
/// version kept it) moves to its infohash at the next start, so that what later saves write there
/// is what the start after finds.
@Suite struct MisnamedStateTests {
    @Test func aTorrentKeptUnderAnotherNameMovesToItsInfohash() throws {
        let fixture = try DaemonQueueTests.Fixture()
        let id = try fixture.addTorrent("misnamed")
        try fixture.restart()
        let folder = fixture.root.appendingPathComponent("state/torrents")
        let real = try #require(
            fixture.backend.registry.withLock { $0.torrents.values.first { $0.id.value == id }?.hash })
        let other = InfoHash(Array(repeating: 0x11, count: 20))!
        for suffix in [".json", ".torrent"] {
            try FileManager.default.moveItem(
                at: folder.appendingPathComponent(real.hex + suffix),
                to: folder.appendingPathComponent(other.hex + suffix))
        }
        try fixture.restart(saving: false)
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
                == [real.hex + ".json", real.hex + ".torrent"])
        let restored = try #require(fixture.backend.registry.withLock { $0.torrents.keys.first })
        try fixture.backend.setPaused(true, [restored])
        try fixture.restart(saving: false)
        #expect(fixture.backend.registry.withLock { $0.torrents.values.first?.settings.paused } == true)
    }
}

/// A kill while a hybrid's state moved from its v2 link's name to its v1 infohash leaves both: the
/// start keeps the .torrent and lets the link go, instead of two torrents on the same files.
@Suite struct LinkBesideItsTorrentTests {
    @Test func theTorrentIsKeptAndTheLinkGoes() throws {
        let content = [UInt8](repeating: 3, count: 1000)
        let blocks = MerkleTree.blockHashes(of: content)
        var file = TorrentBuilder.File(path: ["h.bin"], length: Int64(content.count))
        file.piecesRoot = MerkleTree.fileRoot(blockHashes: blocks)
        var builder = TorrentBuilder(name: "h.bin", files: [file], pieceLength: 16_384, format: .hybrid)
        builder.pieceHashesV1 = [SHA1.hash(content)]
        let metainfo = try Metainfo(bytes: try builder.build())
        let v2 = try #require(metainfo.truncatedInfoHashV2)
        let fixture = try DaemonQueueTests.Fixture()
        let settings = StoredTorrent(downloadDirectory: fixture.root.path, addedDate: 1_000)
        try fixture.backend.state.store(
            magnet: "magnet:?xt=urn:btmh:1220\(try #require(metainfo.infoHashV2))&dn=h.bin",
            settings: settings,
            hash: v2)
        try fixture.backend.state.store(
            metainfo: metainfo.bytes, settings: settings, hash: metainfo.wireInfoHash)
        try fixture.restart(saving: false)
        #expect(fixture.backend.registry.withLock { $0.torrents.count } == 1)
        let folder = fixture.root.appendingPathComponent("state/torrents")
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
                == [metainfo.wireInfoHash.hex + ".json", metainfo.wireInfoHash.hex + ".torrent"])
    }
}
