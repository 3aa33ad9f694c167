import Engine
import Glibc
import Metainfo
import TransmissionRPC

/// The queue as the backend keeps it: `TorrentQueue` decides, this applies its decisions to the engine
/// (a waiting torrent is stopped there) and keeps each torrent's position in its stored settings.
extension EngineBackend {
    typealias Queue = TorrentQueue<TorrentID>

    /// The session's queue sizes, nil for a queue that is off.
    static func queueLimits(_ session: SessionSettings) -> Queue.Limits {
        Queue.Limits(
            downloads: session.downloadQueueEnabled ? session.downloadQueueSize : nil,
            seeds: session.seedQueueEnabled ? session.seedQueueSize : nil)
    }

    /// Puts a torrent about to join the registry last in the queue, and marks it waiting when it must
    /// wait for a slot (a paused one never waits: it is not started at all).
    func enlist(_ torrent: inout DaemonTorrent, in registry: inout Registry) {
        registry.queue.append(torrent.id)
        if let metainfo = torrent.metainfo, torrent.restoredVerified == nil {
            torrent.dataLooksComplete = DaemonTorrent.filesLookComplete(
                metainfo, at: torrent.filePaths,
                in: torrent.settings.incompleteDirectory ?? torrent.settings.downloadDirectory)
        }
        torrent.waiting = false
        guard !torrent.isStopped else { return }
        let now = Self.now()
        let stalledAfter = Self.stalledAfterSeconds(registry.session)
        let others = registry.torrents.lazy.map { id, other in
            other.standing(self.engine.snapshot(id), now: now, stalledAfterSeconds: stalledAfter)
        }
        torrent.waiting = !Queue.admitsNewcomer(
            torrent.queueDirection(engine.snapshot(torrent.id)), among: others,
            limits: Self.queueLimits(registry.session))
    }

    /// After how long without data a download counts as stalled (nil: never).
    static func stalledAfterSeconds(_ session: SessionSettings) -> Int? {
        session.queueStalledEnabled ? session.queueStalledMinutes.saturatingProduct(60) : nil
    }

    /// What every torrent of the registry is doing, for the queue.
    func standings(in registry: Registry, now: Int) -> [TorrentID: Queue.Standing] {
        let stalledAfter = Self.stalledAfterSeconds(registry.session)
        var standings: [TorrentID: Queue.Standing] = [:]
        for (id, torrent) in registry.torrents {
            standings[id] = torrent.standing(engine.snapshot(id), now: now, stalledAfterSeconds: stalledAfter)
        }
        return standings
    }

    /// Starts the torrents started now (torrent-start-now) and the waiting torrents the queue now has
    /// room for, first in the queue first. One the engine is still stopping (stopped a moment ago, when
    /// a start would be lost) keeps its turn until the next look.
    func startQueuedTorrents(in registry: inout Registry) {
        // Only waiting torrents start (`toStart` picks waiting ones, torrent-start-now marks them
        // waiting too): without any, the standings of every torrent need not be taken.
        guard registry.torrents.values.contains(where: \.waiting) else { return }
        let now = Self.now()
        let chosen = registry.queue.toStart(
            standings(in: registry, now: now), limits: Self.queueLimits(registry.session))
        let startingNow = registry.torrents.values.filter { $0.waiting && $0.bypassesQueue }.map(\.id)
        for id in startingNow + chosen {
            guard var torrent = registry.torrents[id], engine.snapshot(id)?.isLive != true else { continue }
            torrent.waiting = false
            torrent.bypassesQueue = false
            torrent.startDate = now
            registry.torrents[id] = torrent
            try? engine.resume(id)
            logger.info("\(torrent.name) (\(id)): started")
        }
    }

    /// Downloads that just finished are seeds now, under the seed queue's rules: one keeps running only
    /// while the other running seeds (stalled ones aside) leave it a slot, else it stops and waits for
    /// its turn to seed, which `startQueuedTorrents` gives it by queue position.
    func queueFinishedDownloads(_ ids: [TorrentID], in registry: inout Registry, now: Int) {
        guard !ids.isEmpty, let slots = Self.queueLimits(registry.session).seeds else { return }
        var standings = standings(in: registry, now: now)
        for id in ids {
            guard var torrent = registry.torrents[id], !torrent.isStopped, !torrent.waiting else { continue }
            let seeding = standings.filter { $0.key != id && $0.value == .running(.seed, stalled: false) }
            guard seeding.count >= slots else { continue }
            torrent.waiting = true
            registry.torrents[id] = torrent
            standings[id] = .waiting(.seed)
            try? engine.pause(id)
            logger.info("\(torrent.name) (\(id)): downloaded; waits for a slot in the seed queue")
        }
    }

    /// torrent-start: a stopped torrent waits for its turn (which may be at once), or with
    /// `bypassingQueue` (torrent-start-now) only for the engine to have stopped it; one running goes on.
    /// `startQueuedTorrents` starts it.
    func startQueued(_ torrent: inout DaemonTorrent, bypassingQueue: Bool) {
        switch engine.snapshot(torrent.id)?.activity {
        case .starting, .fetchingMetadata, .checking, .downloading, .seeding, .moving:
            torrent.waiting = false
            torrent.bypassesQueue = false
        case nil, .paused, .finished, .failed:
            torrent.waiting = true
            torrent.bypassesQueue = torrent.bypassesQueue || bypassingQueue
        }
    }

    /// queue-move-top, -up, -down and -bottom for the selected torrents.
    func move(_ ids: [TorrentID], _ move: Queue.Move) throws {
        try registry.withLock { registry throws in
            registry.queue.move(Set(ids), move)
            try keepQueuePositions(in: &registry)
            startQueuedTorrents(in: &registry)
        }
    }

    /// torrent-set's `queuePosition`.
    func place(_ ids: [TorrentID], at position: Int, in registry: inout Registry) throws {
        for id in ids { registry.queue.place(id, at: position) }
        try keepQueuePositions(in: &registry)
        startQueuedTorrents(in: &registry)
    }

    /// Removed torrents leave the queue; those after them move up.
    func leaveQueue(_ ids: Set<TorrentID>, in registry: inout Registry) {
        registry.queue.remove(ids)
        do {
            try keepQueuePositions(in: &registry)
        } catch {
            logger.warning("queue positions could not be kept: \(error)")
        }
        startQueuedTorrents(in: &registry)
    }

    /// Writes each torrent's position into its settings, saving those that changed, so that the
    /// order survives a restart or a kill. Restoring repairs an order a kill left half-saved. One move
    /// to the top of 10,000 changes them all: they are flushed together, once.
    func keepQueuePositions(in registry: inout Registry) throws {
        var saved = 0
        defer { if saved > 0 { state.flushSaves() } }
        for (position, id) in registry.queue.order.enumerated() {
            guard var torrent = registry.torrents[id], torrent.settings.queuePosition != position else {
                continue
            }
            torrent.settings.queuePosition = position
            registry.torrents[id] = torrent
            try state.save(savedSettings(of: torrent), hash: torrent.hash, flushing: false)
            saved += 1
        }
    }
}

extension TorrentAction {
    /// The queue move this action asks for, if it is one.
    var queueMove: TorrentQueue<TorrentID>.Move? {
        switch self {
        case .queueMoveTop: .top
        case .queueMoveUp: .up
        case .queueMoveDown: .down
        case .queueMoveBottom: .bottom
        case .start, .startNow, .stop, .verify, .reannounce: nil
        }
    }
}

extension DaemonTorrent {
    /// Whether every file (padding aside) is in `directory` at its full size, at `paths` (one per
    /// file): most likely complete, though only the check that follows its start can say. Paths come
    /// checked from the metainfo or a rename.
    static func filesLookComplete(_ metainfo: Metainfo, at paths: [[String]], in directory: String) -> Bool {
        zip(metainfo.files, paths).allSatisfy { file, filePath in
            guard !file.isPadding else { return true }
            var info = stat()
            let path = directory + "/" + filePath.joined(separator: "/")
            return stat(path, &info) == 0 && Int64(info.st_size) == file.length
        }
    }

    /// Whether it downloads or seeds once started: the engine's last word, else its resume data (with
    /// files skipped it is never whole there, so being done when last seen counts), else whether its
    /// files are on disk at their full sizes (a torrent added to seed what is there).
    func queueDirection(_ snapshot: EngineTorrentSnapshot?) -> TorrentQueue<TorrentID>.Direction {
        if let status = snapshot?.status {
            return status.verifiedWantedBytes == status.wantedBytes ? .seed : .download
        }
        guard metainfo != nil else { return .download }
        guard let restoredVerified else { return dataLooksComplete ? .seed : .download }
        let whole = restoredVerified.isComplete
        return whole || (!settings.unwantedFiles.isEmpty && settings.doneDate != 0) ? .seed : .download
    }

    /// What it is doing, for the queue: a download that moved nothing for `stalledAfterSeconds` since
    /// it started is stalled.
    func standing(
        _ snapshot: EngineTorrentSnapshot?, now: Int, stalledAfterSeconds: Int?
    )
        -> TorrentQueue<TorrentID>.Standing
    {
        let direction = queueDirection(snapshot)
        // One started now holds a slot from the moment it is asked for.
        if waiting && bypassesQueue { return .running(direction, stalled: false) }
        if waiting { return .waiting(direction) }
        if isStopped { return .inactive }
        switch snapshot?.activity {
        case nil, .starting, .fetchingMetadata, .checking, .downloading, .seeding, .moving:
            let idleSeconds = now - max(startDate, settings.activityDate)
            let stalled = direction == .download && stalledAfterSeconds.map { idleSeconds >= $0 } == true
            return .running(direction, stalled: stalled)
        case .paused, .finished, .failed:
            return .inactive
        }
    }
}
