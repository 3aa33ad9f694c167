import Metainfo
import Testing
import TorrentModel

@testable import Engine
@testable import PotluckDaemon

/// A `DaemonTorrent` keeps its fields in a shared box: it must still behave as a value, so a copy
/// changed (as `keepBooks` or a torrent-set does) leaves the registry's torrent as it was.
@Suite struct DaemonTorrentTests {
    static func torrent() throws -> DaemonTorrent {
        let hex = String(repeating: "ab", count: 20)
        let magnet = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hex)&dn=example")
        let hash = try #require(magnet.infoHashV1)
        return DaemonTorrent(
            id: TorrentID(value: 3), magnet: magnet, hash: hash,
            settings: StoredTorrent(downloadDirectory: "/data", addedDate: 100), changeLog: TorrentChangeLog()
        )
    }

    @Test func aChangedCopyLeavesTheOriginalAsItWas() throws {
        let original = try Self.torrent()
        var copy = original
        copy.settings.paused = true
        copy.settings.labels.append("tv")
        copy.waiting = true
        copy.absorbCounters(uploaded: 10, downloaded: 20)
        #expect(!original.settings.paused && original.settings.labels.isEmpty && !original.waiting)
        #expect(original.uploadedEver == 0 && original.downloadedEver == 0)
        #expect(copy.settings.paused && copy.settings.labels == ["tv"] && copy.waiting)
        #expect(copy.uploadedEver == 10 && copy.downloadedEver == 20)
        #expect(copy.id == original.id && copy.hash == original.hash && copy.name == "example")
    }

    @Test func changesInADictionaryStayThere() throws {
        var torrents = [TorrentID(value: 3): try Self.torrent()]
        let before = torrents
        torrents[TorrentID(value: 3)]?.settings.secondsSeeding += 5
        // As keepBooks changes each torrent where it lies.
        torrents.values[torrents.startIndex].startDate = 42
        #expect(torrents[TorrentID(value: 3)]?.settings.secondsSeeding == 5)
        #expect(torrents[TorrentID(value: 3)]?.startDate == 42)
        #expect(before[TorrentID(value: 3)]?.settings.secondsSeeding == 0)
        #expect(before[TorrentID(value: 3)]?.startDate == 0)
    }
}
