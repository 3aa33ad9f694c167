/// A torrent-get field, named as Transmission 4.0 names it (RPC version 17).
public enum TorrentField: String, Sendable, Hashable, CaseIterable {
    case activityDate, addedDate, bandwidthPriority, comment, corruptEver, creator, dateCreated
    case desiredAvailable, doneDate, downloadDir, downloadedEver, downloadLimit, downloadLimited, editDate
    case error, errorString, eta, etaIdle
    case fileCount = "file-count"
    case files, fileStats, group, hashString, haveUnchecked, haveValid, honorsSessionLimits, id
    case isFinished, isPrivate, isStalled, labels, leftUntilDone, magnetLink, manualAnnounceTime
    case maxConnectedPeers, metadataPercentComplete, name
    case peerLimit = "peer-limit"
    case peers, peersConnected, peersFrom, peersGettingFromUs, peersSendingToUs, percentComplete
    case percentDone, pieces, pieceCount, pieceSize, priorities
    case primaryMimeType = "primary-mime-type"
    case queuePosition, rateDownload, rateUpload, recheckProgress, secondsDownloading, secondsSeeding
    case seedIdleLimit, seedIdleMode, seedRatioLimit, seedRatioMode, sizeWhenDone, source, startDate
    case status, torrentFile, totalSize, trackerList, trackers, trackerStats, uploadedEver, uploadLimit
    case uploadLimited, uploadRatio, wanted, webseeds, webseedsSendingToUs

    /// This field of `torrent`, as Transmission 4.0.6 writes it.
    public func value(of torrent: TorrentSnapshot) -> JSONValue {
        switch self {
        case .activityDate: .integer(torrent.activityDate)
        case .addedDate: .integer(torrent.addedDate)
        case .bandwidthPriority: .integer(torrent.bandwidthPriority.rawValue)
        case .comment: .string(torrent.comment)
        case .corruptEver: .integer(torrent.corruptEver)
        case .creator: .string(torrent.creator)
        case .dateCreated: .integer(torrent.dateCreated)
        case .desiredAvailable: .integer(torrent.desiredAvailable)
        case .doneDate: .integer(torrent.doneDate)
        case .downloadDir: .string(torrent.downloadDir)
        case .downloadedEver: .integer(torrent.downloadedEver)
        case .downloadLimit: .integer(torrent.downloadLimit)
        case .downloadLimited: .bool(torrent.downloadLimited)
        case .editDate: .integer(torrent.editDate)
        case .error: .integer(torrent.error.rawValue)
        case .errorString: .string(torrent.errorString)
        case .eta: .integer(torrent.eta)
        case .etaIdle: .integer(torrent.etaIdle)
        case .fileCount: .integer(torrent.files.count)
        case .files: .array(torrent.files.map(Self.file))
        case .fileStats: .array(torrent.files.map(Self.fileStats))
        case .group: .string(torrent.group)
        case .hashString: .string(torrent.hash.hex)
        case .haveUnchecked: .integer(torrent.haveUnchecked)
        case .haveValid: .integer(torrent.haveValid)
        case .honorsSessionLimits: .bool(torrent.honorsSessionLimits)
        case .id: .integer(torrent.id)
        case .isFinished: .bool(torrent.isFinished)
        case .isPrivate: .bool(torrent.isPrivate)
        case .isStalled: .bool(torrent.isStalled)
        case .labels: .array(torrent.labels.map(JSONValue.string))
        case .leftUntilDone: .integer(torrent.leftUntilDone)
        case .magnetLink: .string(torrent.magnetLink)
        case .manualAnnounceTime: .integer(torrent.manualAnnounceTime)
        case .maxConnectedPeers, .peerLimit: .integer(torrent.peerLimit)
        case .metadataPercentComplete: .real(torrent.metadataPercentComplete)
        case .name: .string(torrent.name)
        case .peers: .array(torrent.peers.map(Self.peer))
        case .peersConnected: .integer(torrent.peersConnected)
        case .peersFrom: Self.peerSources(torrent.peersFrom)
        case .peersGettingFromUs: .integer(torrent.peersGettingFromUs)
        case .peersSendingToUs: .integer(torrent.peersSendingToUs)
        case .percentComplete: .real(torrent.percentComplete)
        case .percentDone: .real(torrent.percentDone)
        case .pieces: .string(Base64.encode(torrent.pieces))
        case .pieceCount: .integer(torrent.pieceCount)
        case .pieceSize: .integer(torrent.pieceSize)
        case .priorities: .array(torrent.files.map { .integer($0.priority.rawValue) })
        case .primaryMimeType: .string(torrent.primaryMimeType)
        case .queuePosition: .integer(torrent.queuePosition)
        case .rateDownload: .integer(torrent.rateDownload)
        case .rateUpload: .integer(torrent.rateUpload)
        case .recheckProgress: .real(torrent.recheckProgress)
        case .secondsDownloading: .integer(torrent.secondsDownloading)
        case .secondsSeeding: .integer(torrent.secondsSeeding)
        case .seedIdleLimit: .integer(torrent.seedIdleLimit)
        case .seedIdleMode: .integer(torrent.seedIdleMode.rawValue)
        case .seedRatioLimit: .real(torrent.seedRatioLimit)
        case .seedRatioMode: .integer(torrent.seedRatioMode.rawValue)
        case .sizeWhenDone: .integer(torrent.sizeWhenDone)
        case .source: .string(torrent.source)
        case .startDate: .integer(torrent.startDate)
        case .status: .integer(torrent.status.rawValue)
        case .torrentFile: .string(torrent.torrentFile)
        case .totalSize: .integer(torrent.totalSize)
        case .trackerList: .string(torrent.trackerList)
        case .trackers: .array(torrent.trackers.map(Self.tracker))
        case .trackerStats: .array(torrent.trackers.map(Self.trackerStats))
        case .uploadedEver: .integer(torrent.uploadedEver)
        case .uploadLimit: .integer(torrent.uploadLimit)
        case .uploadLimited: .bool(torrent.uploadLimited)
        case .uploadRatio: .real(torrent.uploadRatio)
        // 0 and 1, not booleans: 4.0.2 went back to what 3.00 sent because clients broke on booleans.
        case .wanted: .array(torrent.files.map { .integer($0.wanted ? 1 : 0) })
        case .webseeds: .array(torrent.webseeds.map(JSONValue.string))
        case .webseedsSendingToUs: .integer(torrent.webseedsSendingToUs)
        }
    }

    private static func file(_ file: FileSnapshot) -> JSONValue {
        .object([
            "bytesCompleted": .integer(file.bytesCompleted), "length": .integer(file.length),
            "name": .string(file.name),
        ])
    }

    private static func fileStats(_ file: FileSnapshot) -> JSONValue {
        .object([
            "bytesCompleted": .integer(file.bytesCompleted), "wanted": .bool(file.wanted),
            "priority": .integer(file.priority.rawValue),
        ])
    }

    private static func tracker(_ tracker: TrackerSnapshot) -> JSONValue {
        .object([
            "announce": .string(tracker.announce), "id": .integer(tracker.id),
            "scrape": .string(tracker.scrape),
            "sitename": .string(tracker.sitename), "tier": .integer(tracker.tier),
        ])
    }

    private static func trackerStats(_ tracker: TrackerSnapshot) -> JSONValue {
        .object([
            "announce": .string(tracker.announce),
            "announceState": .integer(tracker.announceState.rawValue),
            "downloadCount": .integer(tracker.downloadCount),
            "hasAnnounced": .bool(tracker.hasAnnounced),
            "hasScraped": .bool(tracker.hasScraped),
            "host": .string(tracker.host),
            "id": .integer(tracker.id),
            "isBackup": .bool(tracker.isBackup),
            "lastAnnouncePeerCount": .integer(tracker.lastAnnouncePeerCount),
            "lastAnnounceResult": .string(tracker.lastAnnounceResult),
            "lastAnnounceStartTime": .integer(tracker.lastAnnounceStartTime),
            "lastAnnounceSucceeded": .bool(tracker.lastAnnounceSucceeded),
            "lastAnnounceTime": .integer(tracker.lastAnnounceTime),
            "lastAnnounceTimedOut": .bool(tracker.lastAnnounceTimedOut),
            "lastScrapeResult": .string(tracker.lastScrapeResult),
            "lastScrapeStartTime": .integer(tracker.lastScrapeStartTime),
            "lastScrapeSucceeded": .bool(tracker.lastScrapeSucceeded),
            "lastScrapeTime": .integer(tracker.lastScrapeTime),
            "lastScrapeTimedOut": .bool(tracker.lastScrapeTimedOut),
            "leecherCount": .integer(tracker.leecherCount),
            "nextAnnounceTime": .integer(tracker.nextAnnounceTime),
            "nextScrapeTime": .integer(tracker.nextScrapeTime),
            "scrape": .string(tracker.scrape),
            "scrapeState": .integer(tracker.scrapeState.rawValue),
            "seederCount": .integer(tracker.seederCount),
            "sitename": .string(tracker.sitename),
            "tier": .integer(tracker.tier),
        ])
    }

    private static func peer(_ peer: PeerSnapshot) -> JSONValue {
        .object([
            "address": .string(peer.address),
            "clientIsChoked": .bool(peer.clientIsChoked),
            "clientIsInterested": .bool(peer.clientIsInterested),
            "clientName": .string(peer.clientName),
            "flagStr": .string(peer.flagStr),
            "isDownloadingFrom": .bool(peer.isDownloadingFrom),
            "isEncrypted": .bool(peer.isEncrypted),
            "isIncoming": .bool(peer.isIncoming),
            "isUTP": .bool(peer.isUTP),
            "isUploadingTo": .bool(peer.isUploadingTo),
            "peerIsChoked": .bool(peer.peerIsChoked),
            "peerIsInterested": .bool(peer.peerIsInterested),
            "port": .integer(peer.port),
            "progress": .real(peer.progress),
            "rateToClient": .integer(peer.rateToClient),
            "rateToPeer": .integer(peer.rateToPeer),
        ])
    }

    private static func peerSources(_ sources: PeerSources) -> JSONValue {
        .object([
            "fromCache": .integer(sources.fromCache), "fromDht": .integer(sources.fromDht),
            "fromIncoming": .integer(sources.fromIncoming), "fromLpd": .integer(sources.fromLpd),
            "fromLtep": .integer(sources.fromLtep), "fromPex": .integer(sources.fromPex),
            "fromTracker": .integer(sources.fromTracker),
        ])
    }
}
