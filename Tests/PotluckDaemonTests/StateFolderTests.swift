import Foundation
import Testing
import TorrentModel

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
