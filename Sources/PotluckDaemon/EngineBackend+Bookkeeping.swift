import Engine
import Metainfo
import Synchronization
import TorrentModel

extension EngineBackend {
    /// Called once a second: takes in the engine's counters and activity (totals over runs, seconds
    /// downloading and seeding, activity and completion dates), pauses verified torrents that were
    /// paused before their verify, stops idle seeds, follows the alternative-speed schedule, starts
    /// queued torrents whose turn came, saves what must not wait, and updates the metrics. Returns the torrents that have just finished
    /// downloading (not those found complete on disk).
    @discardableResult
    func keepBooks() -> [CompletedTorrent] {
        let now = Self.now()
        var checkedWhilePaused: [TorrentID] = []
        var sample = DaemonMetrics.Sample()
        var finished: [CompletedTorrent] = []
        var downloaded: [TorrentID] = []
        // A few hundred torrents at a time, the lock let go between: held for all of 10,000 it kept a
        // torrent-get waiting for tens of milliseconds. One removed meanwhile is skipped; one added
        // meanwhile is seen the next second.
        let ids = registry.withLock { Array($0.torrents.keys) }
        for start in stride(from: 0, to: ids.count, by: Self.booksPerLock) {
            registry.withLock { registry in
                for id in ids[start..<min(start + Self.booksPerLock, ids.count)] {
                    // Each torrent changed where it lies: a loop over a copy of the dictionary that
                    // writes each torrent back made the whole table be copied every second.
                    guard registry.torrents[id] != nil else { continue }
                    keepBooks(
                        of: &registry.torrents[id]!, id: id, now: now, sample: &sample,
                        finished: &finished, downloaded: &downloaded, checkedWhilePaused: &checkedWhilePaused)
                }
            }
        }
        registry.withLock { registry in
            for id in checkedWhilePaused {
                registry.torrents[id]?.pauseAfterCheck = false
                try? engine.pause(id)
            }
            queueFinishedDownloads(downloaded, in: &registry, now: now)
            stopIdleSeeds(in: &registry, now: now)
            followAltSpeedSchedule(at: LocalTime(unixSeconds: now), in: &registry)
            startQueuedTorrents(in: &registry)
        }
        let summary = engine.summary()
        sample.uploadRateBytesPerSecond = summary.uploadRateBytesPerSecond
        sample.downloadRateBytesPerSecond = summary.downloadRateBytesPerSecond
        sample.connectedPeers = summary.connectedPeers
        sample.uploadLimitBytesPerSecond = engine.globalUploadRateBytesPerSecond
        sample.downloadLimitBytesPerSecond = engine.globalDownloadRateBytesPerSecond
        sample.connectionLimit = engine.maximumConnections
        sample.ringOperationsInFlight = engine.ringOperationsInFlight
        metrics.record(sample)
        return finished
    }

    /// How many torrents `keepBooks` looks at under one hold of the registry's lock.
    static let booksPerLock = 500

    /// One torrent's part of `keepBooks`.
    private func keepBooks(
        of torrent: inout DaemonTorrent, id: TorrentID, now: Int, sample: inout DaemonMetrics.Sample,
        finished: inout [CompletedTorrent], downloaded: inout [TorrentID],
        checkedWhilePaused: inout [TorrentID]
    ) {
        let snapshot = engine.snapshot(id)
        sample.states[DaemonMetrics.TorrentState(snapshot?.activity), default: 0] += 1
        guard let snapshot else { return }
        if torrent.metainfo == nil, snapshot.hasMetadata, let metainfo = engine.metainfo(of: id) {
            keepFetched(metainfo, of: &torrent)
        }
        var completed = false
        if let status = snapshot.status {
            let since = torrent.absorbCounters(
                uploaded: status.uploadedPayloadBytes, downloaded: status.downloadedPayloadBytes)
            sample.uploadedBytes += since.uploaded
            sample.downloadedBytes += since.downloaded
            if status.uploadRateBytesPerSecond > 0 || status.downloadRateBytesPerSecond > 0 {
                torrent.settings.activityDate = now
            }
            // Done once the wanted files are: a torrent with skipped files is never whole.
            if status.verifiedWantedBytes == status.wantedBytes && torrent.settings.doneDate == 0 {
                torrent.settings.doneDate = now
                completed = true
            }
        }
        switch snapshot.activity {
        case .downloading:
            torrent.countSecond(seeding: false)
            if torrent.pauseAfterCheck { checkedWhilePaused.append(id) }
        case .seeding:
            torrent.countSecond(seeding: true)
            if torrent.pauseAfterCheck { checkedWhilePaused.append(id) }
        default: break
        }
        guard completed else { return }
        logger.info("\(torrent.name) (\(id)) is complete")
        try? state.save(savedSettings(of: torrent), hash: torrent.hash)
        if torrent.runDownloaded > 0 {
            downloaded.append(id)
            finished.append(
                CompletedTorrent(
                    id: id.value, hash: torrent.hash.hex, name: torrent.name,
                    directory: torrent.settings.downloadDirectory, labels: torrent.settings.labels))
        }
    }

    /// A magnet link's metadata arrived: the torrent is kept by its .torrent from now on.
    private func keepFetched(_ metainfo: Metainfo, of torrent: inout DaemonTorrent) {
        // The files the link's `so=` left out are unwanted here as in the engine, which applied it.
        if torrent.settings.unwantedFiles.isEmpty, let magnet = torrent.magnet,
            let chosen = Engine.selectedFiles(of: magnet, in: metainfo)
        {
            torrent.settings.unwantedFiles = chosen.indices.filter {
                chosen[$0] == .skip && !metainfo.layout.files[$0].isPadding
            }
        }
        torrent.metainfo = metainfo
        // A v2 link to a hybrid torrent: its resume data, its peers and a later add of its .torrent
        // know it by the v1 infohash, which restoring reads from the .torrent. Its state moves there:
        // the .torrent and the settings first, the link's files last, so that a kill in between
        // leaves it kept (under both names at worst, never under neither).
        let hash = metainfo.wireInfoHash
        do {
            try state.storeFetched(metainfo: metainfo.bytes, hash: hash)
            try state.save(savedSettings(of: torrent), hash: hash)
            if hash != torrent.hash {
                state.forget(torrent.hash)
                torrent.hash = hash
            }
            logger.info("\(metainfo.name) (\(torrent.id)): metadata received and kept")
        } catch {
            // The link stays kept: a restart fetches the metadata again.
            logger.warning("\(metainfo.name) (\(torrent.id)): its metadata cannot be kept: \(error)")
        }
    }

    /// How often `saveCheckpoint` runs: Transmission saves its dirty torrents every 6 minutes too.
    public static let checkpointSeconds = 360

    /// Saves the torrents whose transfer totals or active seconds moved since the last checkpoint, and
    /// the session's totals, so that a `kill -9` costs at most `checkpointSeconds` of their history
    /// (they were saved only at shutdown, or when something else about the torrent was). A torrent
    /// whose bytes moved is flushed to the disk, against a power loss too; one that only counted
    /// seconds (an idle seed, thousands of them on a server) is written without a flush, which a kill
    /// cannot undo. Under the registry's lock, as every other save of a torrent is, so that none
    /// overwrites a newer one.
    public func saveCheckpoint() {
        let totals = registry.withLock { registry in
            var marks: [TorrentID: CheckpointMark] = [:]
            for (id, torrent) in registry.torrents {
                let mark = CheckpointMark(torrent)
                marks[id] = mark
                let last = registry.checkpointMarks[id] ?? CheckpointMark()
                guard mark != last else { continue }
                do {
                    try state.save(
                        savedSettings(of: torrent), hash: torrent.hash, flushing: mark.bytes != last.bytes)
                } catch {
                    logger.error("\(torrent.name) (\(id)): \(error)")
                }
            }
            registry.checkpointMarks = marks
            return sessionTotals(registry)
        }
        do {
            try state.saveTotals(totals)
        } catch {
            logger.error("\(error)")
        }
    }

    /// The totals over every session, this one's so far included.
    private func sessionTotals(_ registry: Registry) -> StoredTotals {
        var totals = registry.totals
        for torrent in registry.torrents.values {
            totals.uploadedBytes += torrent.runUploaded
            totals.downloadedBytes += torrent.runDownloaded
        }
        totals.secondsActive += Self.now() - startedAt
        return totals
    }

    /// Saves every torrent's settings and the session's totals (at shutdown, once the engine stopped).
    /// Under the registry's lock: a request still in flight saves under it too, so the newer of the
    /// two is the one kept, and a torrent it removed is not written back.
    public func saveAll() {
        registry.withLock { registry in
            let torrents = registry.torrents.values.map { (savedSettings(of: $0), $0.hash) }
            for problem in state.saveAll(torrents) { logger.error("\(problem)") }
            do {
                try state.saveTotals(sessionTotals(registry))
            } catch {
                logger.error("\(error)")
            }
        }
    }

    /// The settings to keep for a torrent: its totals include the current run's counters, since a
    /// restarted torrent counts from zero again.
    func savedSettings(of torrent: DaemonTorrent) -> StoredTorrent {
        var settings = torrent.settings
        settings.uploadedEver = torrent.uploadedEver
        settings.downloadedEver = torrent.downloadedEver
        return settings
    }
}

/// What a torrent had counted at a checkpoint: its bytes moved this run and its active seconds.
struct CheckpointMark: Equatable {
    var bytes: Int64 = 0
    var seconds = 0

    init() {}

    init(_ torrent: DaemonTorrent) {
        bytes = torrent.runUploaded &+ torrent.runDownloaded
        seconds = torrent.settings.secondsSeeding &+ torrent.settings.secondsDownloading
    }
}
