import Engine
import Foundation
import Metainfo
import TorrentModel
import Tracker
import TransmissionRPC

/// The RPC's view of a torrent, as torrent-get reports it.
typealias RPCTorrentSnapshot = TransmissionRPC.TorrentSnapshot

/// Which costly parts of a snapshot a torrent-get asked for: worked out once per call, not looked up
/// in its set of fields for each torrent (several hashes per torrent, a few percent at 10,000).
struct RPCSnapshotParts: Sendable {
    var pieces: Bool
    var magnetLink: Bool
    var files: Bool
    var trackers: Bool
    var torrentFile: Bool
    var trackerStats: Bool

    init(_ fields: Set<TorrentField>) {
        pieces = fields.contains(.pieces)
        magnetLink = fields.contains(.magnetLink)
        files = !fields.isDisjoint(with: [.files, .fileStats, .fileCount, .priorities, .wanted])
        trackers = !fields.isDisjoint(with: [.trackers, .trackerStats, .trackerList])
        torrentFile = fields.contains(.torrentFile)
        trackerStats = fields.contains(.trackerStats)
    }
}

extension DaemonTorrent {
    /// What torrent-get reports about this torrent, from the engine's latest snapshot.
    ///
    /// `session` gives the seed idle limit (for `etaIdle`) and when a download is stalled;
    /// `trackerStatus` what each tracker last did (asked of the engine only for `trackerStats`).
    ///
    /// Per-file progress and the pieces come from the engine's latest report of which pieces are
    /// verified (or, for a torrent restored paused, from its resume data). Peer lists are empty (the
    /// engine reports counts); connected peers are counted.
    func rpcSnapshot(
        engine: EngineTorrentSnapshot?, parts: RPCSnapshotParts, torrentFile: String,
        session: SessionSettings, now: Int, trackerStatus: [TrackerStatus] = []
    ) -> RPCTorrentSnapshot {
        var snapshot = RPCTorrentSnapshot(id: id.value, hash: hash, name: name)
        let status = engine?.status
        // Until a magnet link's metadata arrives its size is unknown: 0, and nothing is done.
        let total = metainfo?.totalLength ?? 0
        let verified =
            status?.verifiedBytes
            ?? metainfo.flatMap { metainfo in restoredVerified.map { Self.bytes(of: $0, in: metainfo) } } ?? 0
        let allVerified = metainfo != nil && verified == total
        // Skipped files do not count: done is every wanted piece verified (as the engine reports it).
        let wanted = metainfo == nil ? 0 : status.map { $0.wantedBytes } ?? total
        let verifiedWanted = metainfo == nil ? 0 : status.map { $0.verifiedWantedBytes } ?? verified
        let complete = metainfo != nil && verifiedWanted == wanted
        // Which pieces: nil in a report means all of them. Made only for the fields that show them.
        func verifiedPieces() -> PieceSet? {
            metainfo.map { metainfo in
                allVerified
                    ? PieceSet(pieceCount: metainfo.pieceCount, full: true)
                    : status.map { $0.verified ?? PieceSet(pieceCount: metainfo.pieceCount, full: true) }
                        ?? restoredVerified ?? PieceSet(pieceCount: metainfo.pieceCount)
            }
        }
        snapshot.totalSize = Int(total)
        snapshot.sizeWhenDone = Int(wanted)
        snapshot.haveValid = Int(verified)
        snapshot.leftUntilDone = Int(wanted - verifiedWanted)
        snapshot.percentDone = wanted > 0 ? Double(verifiedWanted) / Double(wanted) : (complete ? 1 : 0)
        snapshot.percentComplete = total > 0 ? Double(verified) / Double(total) : (allVerified ? 1 : 0)
        snapshot.metadataPercentComplete = metainfo == nil ? engine?.metadataFetch?.fractionReceived ?? 0 : 1
        snapshot.pieceCount = metainfo?.pieceCount ?? 0
        snapshot.pieceSize = metainfo?.pieceLength ?? 0

        // A waiting torrent being verified shows its check.
        snapshot.status =
            waiting && !pauseAfterCheck
            ? (queueDirection(engine) == .seed ? .seedWait : .downloadWait)
            : Self.status(engine?.activity, paused: settings.paused && !pauseAfterCheck)
        if case .checking = engine?.activity, let status, total > 0 {
            snapshot.recheckProgress = Double(status.checkedBytes) / Double(total)
        }
        if case .failed(let reason) = engine?.activity {
            snapshot.error = .localError
            snapshot.errorString = reason
        } else if let tracker = status?.trackerState, tracker.hasPrefix("tracker: error") {
            snapshot.error = .trackerError
            snapshot.errorString = String(tracker.dropFirst("tracker: ".count))
        }
        let running = snapshot.status == .downloading || snapshot.status == .seeding
        if running, let status {
            snapshot.rateDownload = Int(status.downloadRateBytesPerSecond)
            snapshot.rateUpload = Int(status.uploadRateBytesPerSecond)
            snapshot.peersConnected = status.connectedPeers
        }
        snapshot.downloadedEver = Int(downloadedEver)
        snapshot.uploadedEver = Int(uploadedEver)
        // Transmission's ratio: uploaded over downloaded, or over what we have when nothing was downloaded.
        let base = downloadedEver > 0 ? downloadedEver : verified
        snapshot.uploadRatio = base > 0 ? Double(uploadedEver) / Double(base) : -1
        // Transmission's -1 is "not available" (not downloading), -2 "unknown" (downloading, no rate):
        // clients print the first as done.
        if snapshot.status == .downloading {
            snapshot.eta = snapshot.rateDownload > 0 ? snapshot.leftUntilDone / snapshot.rateDownload : -2
        } else {
            snapshot.eta = -1
        }
        snapshot.isFinished = complete && (engine?.activity == .finished || settings.seedLimitReached == true)
        let standing = standing(
            engine, now: now, stalledAfterSeconds: EngineBackend.stalledAfterSeconds(session))
        snapshot.isStalled = standing == .running(.download, stalled: true)
        if snapshot.status == .seeding, let idleLimit = seedIdleLimit(session) {
            snapshot.etaIdle = idleLimit.secondsLeft(
                startDate: startDate, activityDate: settings.activityDate, now: now)
        }

        snapshot.addedDate = settings.addedDate
        snapshot.doneDate = settings.doneDate
        snapshot.activityDate = settings.activityDate
        snapshot.startDate = startDate
        snapshot.dateCreated = Int(metainfo?.creationDate ?? 0)
        snapshot.secondsDownloading = settings.secondsDownloading
        snapshot.secondsSeeding = settings.secondsSeeding

        snapshot.comment = metainfo?.comment ?? ""
        snapshot.creator = metainfo?.createdBy ?? ""
        snapshot.source = metainfo?.source ?? ""
        snapshot.isPrivate = metainfo?.isPrivate ?? false
        snapshot.torrentFile = metainfo == nil ? "" : torrentFile
        snapshot.webseeds = metainfo?.webSeeds ?? magnet?.webSeeds ?? []
        if parts.pieces { snapshot.pieces = verifiedPieces()?.wireBytes ?? [] }
        if parts.magnetLink { snapshot.magnetLink = (metainfo?.magnetLink ?? magnet)?.uri ?? "" }
        if parts.files { snapshot.files = files(verified: verifiedPieces()) }
        if parts.trackers { snapshot.trackers = trackers(trackerStatus) }

        snapshot.downloadDir = settings.downloadDirectory
        snapshot.labels = settings.labels
        snapshot.group = settings.group
        snapshot.bandwidthPriority = Priority(rawValue: settings.bandwidthPriority) ?? .normal
        snapshot.queuePosition = settings.queuePosition ?? 0
        snapshot.downloadLimit = settings.downloadLimit
        snapshot.downloadLimited = settings.downloadLimited
        snapshot.uploadLimit = settings.uploadLimit
        snapshot.uploadLimited = settings.uploadLimited
        snapshot.honorsSessionLimits = settings.honorsSessionLimits
        snapshot.peerLimit = settings.peerLimit
        snapshot.seedRatioLimit = settings.seedRatioLimit
        snapshot.seedRatioMode = RatioLimitMode(rawValue: settings.seedRatioMode) ?? .global
        snapshot.seedIdleLimit = settings.seedIdleLimit
        snapshot.seedIdleMode = IdleLimitMode(rawValue: settings.seedIdleMode) ?? .global
        return snapshot
    }

    /// Transmission's status number for the engine's activity; a torrent the client paused is stopped
    /// whatever the engine last said, and one starting up is about to check its data. (Waiting to
    /// download or seed is said only of a torrent waiting in the queue.)
    static func status(_ activity: TorrentActivity?, paused: Bool) -> TorrentStatus {
        if paused { return .stopped }
        switch activity {
        // Starting up, or moving its files: about to check (or find) its data.
        case nil, .starting, .moving: return .checkWait
        case .checking: return .checking
        case .downloading, .fetchingMetadata: return .downloading
        case .seeding: return .seeding
        case .paused, .finished, .failed: return .stopped
        }
    }

    private func files(verified: PieceSet?) -> [FileSnapshot] {
        guard let metainfo, let verified else { return [] }
        let unwanted = Set(settings.unwantedFiles)
        let paths = filePaths
        return metainfo.files.enumerated().map { index, file in
            FileSnapshot(
                name: paths[index].joined(separator: "/"), length: Int(file.length),
                bytesCompleted: Int(
                    Self.verifiedBytes(of: file, in: verified, pieceLength: metainfo.pieceLength)),
                wanted: !unwanted.contains(index),
                priority: settings.filePriorities[index].flatMap(Priority.init(rawValue:)) ?? .normal)
        }
    }

    /// The announce list (as edited, with its ids), each with what the engine says of its tracker.
    private func trackers(_ statuses: [TrackerStatus]) -> [TrackerSnapshot] {
        let byURL = Dictionary(statuses.map { ($0.announce, $0) }, uniquingKeysWith: { first, _ in first })
        return announceList.trackers.map { listed in
            let url = listed.announce
            let host = URLComponents(string: url)?.host ?? ""
            var tracker = TrackerSnapshot(
                id: listed.id, announce: url, scrape: Self.scrapeURL(url), sitename: Self.siteName(host),
                tier: listed.tier, host: host)
            // The engine names a tracker by its parsed URL.
            if let status = (try? TrackerURL(url)).flatMap({ byURL[$0.description] }) {
                Self.fill(&tracker, from: status)
            }
            return tracker
        }
    }

    private static func fill(_ tracker: inout TrackerSnapshot, from status: TrackerStatus) {
        tracker.isBackup = status.isBackup
        tracker.announceState = state(status.announceState)
        tracker.hasAnnounced = status.hasAnnounced
        tracker.lastAnnounceStartTime = Int(status.lastAnnounceStartTime)
        tracker.lastAnnounceTime = Int(status.lastAnnounceTime)
        tracker.lastAnnounceSucceeded = status.lastAnnounceSucceeded
        tracker.lastAnnounceTimedOut = status.lastAnnounceTimedOut
        tracker.lastAnnounceResult = status.lastAnnounceResult
        tracker.lastAnnouncePeerCount = status.lastAnnouncePeerCount
        tracker.nextAnnounceTime = Int(status.nextAnnounceTime)
        tracker.scrapeState = state(status.scrapeState)
        tracker.hasScraped = status.hasScraped
        tracker.lastScrapeStartTime = Int(status.lastScrapeStartTime)
        tracker.lastScrapeTime = Int(status.lastScrapeTime)
        tracker.lastScrapeSucceeded = status.lastScrapeSucceeded
        tracker.lastScrapeTimedOut = status.lastScrapeTimedOut
        tracker.lastScrapeResult = status.lastScrapeResult
        tracker.nextScrapeTime = Int(status.nextScrapeTime)
        tracker.seederCount = status.seederCount.map { Int($0) } ?? -1
        tracker.leecherCount = status.leecherCount.map { Int($0) } ?? -1
        tracker.downloadCount = status.downloadCount.map { Int($0) } ?? -1
    }

    private static func state(_ state: TrackerStatus.State) -> TrackerSnapshot.State {
        switch state {
        case .inactive: .inactive
        case .waiting: .waiting
        case .queued: .queued
        case .active: .active
        }
    }

    /// The scrape URL by convention (BEP 48): `announce` in the last path component becomes `scrape`.
    static func scrapeURL(_ announce: String) -> String {
        guard let slash = announce.lastIndex(of: "/") else { return "" }
        let last = announce[announce.index(after: slash)...]
        guard last.hasPrefix("announce") else { return "" }
        return announce[...slash] + "scrape" + last.dropFirst("announce".count)
    }

    /// `example` for `tracker.example.org`, as Transmission 4 shows it.
    static func siteName(_ host: String) -> String {
        let labels = host.split(separator: ".")
        return labels.count >= 2 ? String(labels[labels.count - 2]) : host
    }
}

extension DaemonTorrent {
    /// The bytes of `file` that lie in verified pieces.
    static func verifiedBytes(of file: FileEntry, in verified: PieceSet, pieceLength: Int) -> Int64 {
        guard file.length > 0 else { return 0 }
        let length = Int64(pieceLength)
        let end = file.offset + file.length
        var bytes: Int64 = 0
        for piece in Int(file.offset / length)...Int((end - 1) / length)
        where verified.contains(PieceIndex(UInt32(piece))) {
            let start = Int64(piece) * length
            bytes += min(end, start + length) - max(file.offset, start)
        }
        return bytes
    }
}
