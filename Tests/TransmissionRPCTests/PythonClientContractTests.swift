import Testing
import TransmissionRPC

/// What the `transmission-rpc` Python library (7.0.12, used by many scripts and Home Assistant) needs,
/// read from its source: `constants.get_torrent_arguments(17)`, `Session`'s properties and
/// `Client._update_server_version`.
@Suite struct PythonClientContractTests {
    /// The fields `Client.get_torrents()` asks for at rpc-version 17.
    static let torrentFields = [
        "activityDate", "addedDate", "bandwidthPriority", "comment", "corruptEver", "creator", "dateCreated",
        "desiredAvailable", "doneDate", "downloadDir", "downloadedEver", "downloadLimit", "downloadLimited",
        "editDate", "error", "errorString", "eta", "etaIdle", "files", "fileStats", "group", "hashString",
        "haveUnchecked", "haveValid", "honorsSessionLimits", "id", "isFinished", "isPrivate", "isStalled",
        "labels", "leftUntilDone", "magnetLink", "manualAnnounceTime", "maxConnectedPeers",
        "metadataPercentComplete", "name", "peer-limit", "peers", "peersConnected", "peersFrom",
        "peersGettingFromUs", "peersSendingToUs", "percentComplete", "percentDone", "pieces", "pieceCount",
        "pieceSize", "priorities", "primary-mime-type", "queuePosition", "rateDownload", "rateUpload",
        "recheckProgress", "secondsDownloading", "secondsSeeding", "seedIdleLimit", "seedIdleMode",
        "seedRatioLimit", "seedRatioMode", "sizeWhenDone", "startDate", "status", "trackers", "trackerStats",
        "totalSize", "torrentFile", "uploadedEver", "uploadLimit", "uploadLimited", "uploadRatio", "wanted",
        "webseeds", "webseedsSendingToUs", "file-count", "trackerList",
    ]

    /// The keys `Session`'s properties index; `version` and `rpc-version` are read on connecting.
    static let sessionKeys = [
        "alt-speed-down", "alt-speed-enabled", "alt-speed-time-begin", "alt-speed-time-day",
        "alt-speed-time-enabled", "alt-speed-time-end", "alt-speed-up", "blocklist-enabled", "blocklist-size",
        "blocklist-url", "cache-size-mb", "config-dir", "dht-enabled", "download-dir",
        "download-dir-free-space",
        "download-queue-enabled", "download-queue-size", "encryption", "idle-seeding-limit-enabled",
        "idle-seeding-limit", "incomplete-dir-enabled", "incomplete-dir", "lpd-enabled", "peer-limit-global",
        "peer-limit-per-torrent", "peer-port-random-on-start", "peer-port", "pex-enabled",
        "port-forwarding-enabled", "queue-stalled-enabled", "queue-stalled-minutes", "rename-partial-files",
        "rpc-version-minimum", "rpc-version", "script-torrent-done-enabled", "script-torrent-done-filename",
        "seed-queue-enabled", "seed-queue-size", "seedRatioLimit", "seedRatioLimited",
        "speed-limit-down-enabled",
        "speed-limit-down", "speed-limit-up-enabled", "speed-limit-up", "start-added-torrents",
        "trash-original-torrent-files", "units", "utp-enabled", "version", "default-trackers",
        "rpc-version-semver", "script-torrent-added-enabled", "script-torrent-added-filename",
        "script-torrent-done-seeding-enabled", "script-torrent-done-seeding-filename",
    ]

    @Test func everyTorrentFieldItAsksForIsAnswered() async throws {
        #expect(Self.torrentFields.filter { TorrentField(rawValue: $0) == nil } == [])
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let names = Self.torrentFields.map { "\"\($0)\"" }.joined(separator: ",")
        let reply = try await harness.call(#"{"method":"torrent-get","arguments":{"fields":[\#(names)]}}"#)
        let torrents = try #require(reply["arguments"]?.objectValue?["torrents"]?.arrayValue)
        for torrent in torrents {
            #expect(Set(torrent.objectValue?.keys ?? [:].keys) == Set(Self.torrentFields))
        }
    }

    @Test func everySessionKeyItReadsIsAnswered() async throws {
        let harness = RPCHarness()
        let arguments = try #require(
            try await harness.call(#"{"method":"session-get"}"#)["arguments"]?.objectValue)
        #expect(Self.sessionKeys.filter { arguments[$0] == nil } == [])
        #expect(arguments["rpc-version"]?.integerValue == 17)
        #expect(arguments["version"]?.stringValue?.hasPrefix("4.0.6 ") == true)
    }

    /// `File`, `FileStat`, `Tracker` and `TrackerStats` index these keys of the nested objects.
    @Test func nestedObjectsHaveTheKeysItIndexes() async throws {
        let harness = RPCHarness(torrents: TorrentSnapshot.examples)
        let reply = try await harness.call(
            #"{"method":"torrent-get","arguments":{"ids":[7],"fields":["files","fileStats","trackers","trackerStats"]}}"#
        )
        let torrent = try #require(
            reply["arguments"]?.objectValue?["torrents"]?.arrayValue?.first?.objectValue)
        func keys(_ field: String) -> Set<String> {
            Set(torrent[field]?.arrayValue?.first?.objectValue?.keys.map { $0 } ?? [])
        }
        #expect(keys("files").isSuperset(of: ["bytesCompleted", "length", "name"]))
        #expect(keys("fileStats").isSuperset(of: ["bytesCompleted", "wanted", "priority"]))
        #expect(keys("trackers").isSuperset(of: ["id", "announce", "scrape", "tier"]))
        #expect(
            keys("trackerStats").isSuperset(of: [
                "id", "announceState", "announce", "downloadCount", "hasAnnounced", "hasScraped", "host",
                "isBackup",
                "lastAnnouncePeerCount", "lastAnnounceResult", "lastAnnounceStartTime",
                "lastAnnounceSucceeded",
                "lastAnnounceTime", "lastAnnounceTimedOut", "lastScrapeResult", "lastScrapeStartTime",
                "lastScrapeSucceeded", "lastScrapeTime", "lastScrapeTimedOut", "leecherCount",
                "nextAnnounceTime",
                "nextScrapeTime", "scrapeState", "scrape", "seederCount", "sitename", "tier",
            ]))
    }
}
