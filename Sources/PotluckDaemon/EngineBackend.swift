import Engine
import Foundation
import Locking
public import Logging
import Metainfo
import Storage
import Synchronization
import TorrentModel
import TransmissionRPC

/// The Transmission RPC over the engine: torrent ids are the engine's `TorrentID`s, and every change a
/// client makes is written to the state folder before the reply, so a `kill -9` loses none of them.
///
/// Calls come from the HTTP server's tasks and the watch folder; the registry's lock keeps an add, a
/// remove and a save of the same torrent from interleaving. Waiting for the engine (a torrent to stop
/// before its resume data or files are deleted) happens outside the lock.
public final class EngineBackend: TransmissionBackend, Sendable {
    struct Registry: Sendable {
        var torrents: [TorrentID: DaemonTorrent] = [:]
        /// Ids removed lately, with when, for torrent-get's `recently-active`.
        var removed: [(id: Int, at: Int)] = []
        var session: SessionSettings {
            didSet { sessionRevision += 1 }
        }
        /// Counts the changes of `session`, which some kept rows show (`KeptRows`).
        var sessionRevision = 0
        /// The rows of the list layouts asked for last, the latest first.
        var keptRows: [KeptRows] = []
        /// The session-set keys clients changed, as JSON, kept in `session.json`.
        var sessionOverrides: [String: JSONValue]
        var totals: StoredTotals
        /// Added since the daemon started.
        var filesAdded = 0
        var nextOrder = 0
        var queue = TorrentQueue<TorrentID>()
        var altSpeedClock = AltSpeedClock()
        /// What each torrent had counted as of the last `saveCheckpoint`.
        var checkpointMarks: [TorrentID: CheckpointMark] = [:]
    }

    let engine: Engine
    let state: StateFolder
    let registry: Lock<Registry>
    /// Every change of the registry's torrents, for torrent-get's kept rows.
    let changeLog = TorrentChangeLog()
    /// Per torrent, how many runs have ended and whether the engine has removed it (from its events).
    let engineEvents = Lock<(ended: [TorrentID: Int], removed: Set<TorrentID>)>(([:], []))
    let startedAt: Int
    let logger: Logger
    let metrics: DaemonMetrics
    /// A client sent session-close.
    let closeRequested = Atomic<Bool>(false)
    /// Where clients may put data.
    let allowedFolders: AllowedFolders
    /// What `port-test` asks (see `PortCheck`); nil: it is refused.
    let portTestURL: String?

    /// A backend for `engine` keeping its state in `state`: `session` is the session's settings and
    /// `overrides` the session-set changes kept in the state folder that are part of them.
    public init(
        engine: Engine, state: StateFolder, session: SessionSettings, overrides: [String: JSONValue],
        metrics: DaemonMetrics = DaemonMetrics(), allowedFolders: AllowedFolders = AllowedFolders(),
        portTestURL: String? = PortCheck.defaultURL, logger: Logger
    ) {
        self.engine = engine
        self.allowedFolders = allowedFolders
        self.portTestURL = portTestURL
        self.state = state
        self.metrics = metrics
        self.logger = logger
        startedAt = Self.now()
        var totals = state.loadTotals()
        totals.sessionCount += 1
        registry = Lock(Registry(session: session, sessionOverrides: overrides, totals: totals))
        try? state.saveTotals(totals)
    }

    static func now() -> Int { Int(Date().timeIntervalSince1970) }

    /// Follows the engine's events until it shuts down: what `stopInEngine` and `remove` wait on, and
    /// the moment a seed limit ends a torrent (`keepSeedLimitStop`).
    public func followEngineEvents() async {
        for await event in engine.events {
            engineEvents.withLock { events in
                switch event {
                case .added: break
                case .ended(let id, _, _): events.ended[id, default: 0] += 1
                case .removed(let id): events.removed.insert(id)
                }
            }
            if case .ended(let id, .completed?, _) = event { keepSeedLimitStop(id) }
        }
    }

    // MARK: Restoring

    /// Adds every torrent kept in the state folder to the engine in queue order (torrents kept before
    /// queues existed last, in the order they were first added), so that the first in the queue take
    /// its slots; paused ones are paused again at once. Returns how many were restored.
    @discardableResult
    public func restore() -> Int {
        var restored = 0
        let kept = state.storedTorrents(problem: { logger.warning("\($0)") }).enumerated().sorted {
            ($0.element.settings.queuePosition ?? Int.max, $0.offset)
                < ($1.element.settings.queuePosition ?? Int.max, $1.offset)
        }.map(\.element)
        // Decoded, each torrent's folder is a string of its own: most share a few folders.
        var folders: [String: String] = [:]
        func shared(_ folder: String) -> String {
            if let kept = folders[folder] { return kept }
            folders[folder] = folder
            return folder
        }
        // Parsed, and their resume data read, on every core; started in queue order.
        let parsed = kept.concurrentMap { [state] settings, source, hash -> Result<KeptTorrent, any Error> in
            Result {
                switch source {
                case .metainfo(let bytes):
                    let metainfo = try Metainfo(bytes: bytes)
                    return KeptTorrent(
                        origin: .metainfo(metainfo), settings: settings,
                        verified: DaemonTorrent.verifiedPieces(
                            in: state.resumeFile(metainfo.wireInfoHash), metainfo: metainfo),
                        storedHash: hash)
                case .magnet(let link):
                    return KeptTorrent(
                        origin: .magnet(try MagnetLink(parsing: link)), settings: settings, verified: nil,
                        storedHash: hash)
                }
            }
        }
        // A link kept beside the .torrent it led to (a kill while its state moved to the v1 infohash,
        // `keepFetched`): the .torrent is the torrent, and the link goes.
        let fetchedV2: Set<InfoHash> = Set(
            parsed.compactMap {
                if case .success(let kept) = $0, case .metainfo(let metainfo) = kept.origin {
                    return metainfo.truncatedInfoHashV2
                }
                return nil
            })
        for outcome in parsed {
            var kept: KeptTorrent
            switch outcome {
            case .success(let read): kept = read
            case .failure(let error):
                logger.warning("a kept torrent cannot be read (\(error)); it is left out")
                continue
            }
            if case .magnet(let link) = kept.origin, link.infoHashV1 == nil,
                let v2 = link.wireInfoHash, fetchedV2.contains(v2)
            {
                state.forget(kept.storedHash)
                logger.notice("\(kept.origin.name): its link is kept as its .torrent already; the link goes")
                continue
            }
            if case .metainfo(let metainfo) = kept.origin, metainfo.wireInfoHash != kept.storedHash {
                keepUnderItsInfohash(metainfo, settings: kept.settings, storedAs: kept.storedHash)
            }
            kept.settings.downloadDirectory = shared(kept.settings.downloadDirectory)
            kept.settings.incompleteDirectory = kept.settings.incompleteDirectory.map(shared)
            registry.withLock { registry in
                registry.nextOrder = max(registry.nextOrder, kept.settings.order + 1)
                do {
                    try start(kept.origin, settings: kept.settings, verified: kept.verified, in: &registry)
                    restored += 1
                } catch {
                    logger.error("\(kept.origin.name): \(error)")
                }
            }
        }
        registry.withLock { registry in
            do {
                try keepQueuePositions(in: &registry)
            } catch {
                logger.warning("queue positions could not be kept: \(error)")
            }
        }
        return restored
    }

    // MARK: Adding

    /// A .torrent file named by a torrent-add `filename` on this machine, or dropped in the watch
    /// folder: only a regular file no larger than a fetched one may be, so `/dev/zero`, a FIFO or a
    /// large data file gets an error instead of the daemon filling its memory or waiting forever.
    func readTorrentFile(_ path: String) throws -> [UInt8] {
        let limit = TorrentURLFetcher.maximumBytes
        let read: [UInt8]?
        do {
            read = try SmallFile.read(path, maximumBytes: limit)
        } catch {
            throw RPCFailure("the torrent file could not be read: \(error)")
        }
        guard let read else { throw RPCFailure("the torrent file \(path) is larger than \(limit >> 20) MiB") }
        return read
    }

    public func addTorrent(_ request: TorrentAddRequest) async throws -> TorrentAddOutcome {
        let bytes: [UInt8]
        switch request.source {
        case .metainfo(let given): bytes = given
        case .file(let path): bytes = try readTorrentFile(path)
        case .magnet(let link):
            return try add(
                magnet: link, downloadDirectory: request.downloadDirectory, paused: request.paused,
                changes: request.changes)
        case .url(let url):
            switch try await TorrentURLFetcher.fetch(url, cookies: request.cookies) {
            case .metainfo(let fetched): bytes = fetched
            case .magnet(let link):
                return try add(
                    magnet: link, downloadDirectory: request.downloadDirectory, paused: request.paused,
                    changes: request.changes)
            }
        }
        return try add(
            bytes, downloadDirectory: request.downloadDirectory, paused: request.paused,
            changes: request.changes)
    }

    /// Adds a torrent by its magnet link, kept in the state folder (as the link, until the metadata
    /// arrives and its .torrent is kept instead) before it reaches the engine.
    public func add(
        magnet text: String, downloadDirectory: String? = nil, paused: Bool? = nil,
        changes: TorrentChanges = TorrentChanges()
    ) throws -> TorrentAddOutcome {
        let magnet: MagnetLink
        do {
            magnet = try MagnetLink(parsing: text)
        } catch {
            throw RPCFailure("invalid magnet link: \(error)")
        }
        // A v2-only link is kept under its truncated v2 hash, as its .torrent will be (`wireInfoHash`).
        guard let hash = magnet.wireInfoHash else { throw RPCFailure("the magnet link names no infohash") }
        let source = TorrentOrigin.magnet(magnet)
        return try add(
            source, hash: hash, downloadDirectory: downloadDirectory, paused: paused, changes: changes
        ) {
            settings throws in try state.store(magnet: text, settings: settings, hash: hash)
        }
    }

    /// Adds a torrent from its metainfo bytes, keeping it in the state folder before it reaches the
    /// engine. nil `downloadDirectory` and `paused` follow the session's settings.
    public func add(
        _ bytes: [UInt8], downloadDirectory: String? = nil, paused: Bool? = nil,
        changes: TorrentChanges = TorrentChanges()
    ) throws -> TorrentAddOutcome {
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(bytes: bytes)
        } catch {
            throw RPCFailure("invalid or corrupt torrent file")
        }
        return try add(
            .metainfo(metainfo), hash: metainfo.wireInfoHash, downloadDirectory: downloadDirectory,
            paused: paused,
            changes: changes
        ) { settings throws in
            try state.store(metainfo: bytes, settings: settings, hash: metainfo.wireInfoHash)
        }
    }

    private func add(
        _ source: TorrentOrigin, hash: InfoHash, downloadDirectory: String?, paused: Bool?,
        changes: TorrentChanges,
        keep: (StoredTorrent) throws -> Void
    ) throws -> TorrentAddOutcome {
        if let downloadDirectory { try checkAllowed(downloadDirectory, as: "download-dir") }
        return try registry.withLock { registry throws -> TorrentAddOutcome in
            let identity = { (id: TorrentID) in TorrentIdentity(id: id.value, name: source.name, hash: hash) }
            if let existing = registry.torrents.values.first(where: { $0.hash == hash }) {
                return .duplicate(identity(existing.id))
            }
            var settings = StoredTorrent(
                downloadDirectory: downloadDirectory ?? registry.session.downloadDirectory,
                addedDate: Self.now())
            settings.incompleteDirectory = Self.incompleteDirectory(
                for: source, downloadDirectory: settings.downloadDirectory, session: registry.session)
            settings.order = registry.nextOrder
            settings.queuePosition = registry.torrents.count
            settings.paused = paused ?? !registry.session.startAddedTorrents
            settings.peerLimit = registry.session.peerLimitPerTorrent
            try Self.apply(changes, to: &settings, fileCount: source.fileCount)
            try keep(settings)
            let id: TorrentID
            do {
                // Resume data left by an earlier add of the same torrent.
                let verified = source.metainfo.flatMap {
                    DaemonTorrent.verifiedPieces(in: state.resumeFile(hash), metainfo: $0)
                }
                id = try start(source, settings: settings, verified: verified, in: &registry)
            } catch {
                state.forget(hash)
                throw error
            }
            registry.nextOrder += 1
            registry.filesAdded += 1
            registry.totals.filesAdded += 1
            logger.info("added \(source.name) (\(id)) into \(settings.downloadDirectory)")
            return .added(identity(id))
        }
    }

    /// A kept torrent read back: what it came from, its settings, and the pieces its resume data
    /// vouches for.
    private struct KeptTorrent: Sendable {
        let origin: TorrentOrigin
        var settings: StoredTorrent
        let verified: PieceSet?
        /// The name its state files have.
        let storedHash: InfoHash
    }

    /// A torrent kept under another name than its infohash (a hybrid that a v2 link added, kept by an
    /// earlier version; or a state folder put together by hand): its state moves to the infohash, the
    /// name every later save uses, or the next start would bring back these settings.
    private func keepUnderItsInfohash(_ metainfo: Metainfo, settings: StoredTorrent, storedAs old: InfoHash) {
        do {
            try state.storeFetched(metainfo: metainfo.bytes, hash: metainfo.wireInfoHash)
            try state.save(settings, hash: metainfo.wireInfoHash)
            state.forget(old)
            logger.notice(
                "\(metainfo.name): kept under its infohash \(metainfo.wireInfoHash) from now on, not \(old)")
        } catch {
            logger.warning("\(metainfo.name): its state cannot move to its infohash: \(error)")
        }
    }

    /// Puts a torrent into the engine with its kept settings, paused if they say so. `verified`: the
    /// pieces its resume data vouches for (shown until the engine reports).
    @discardableResult
    private func start(
        _ source: TorrentOrigin, settings: StoredTorrent, verified: PieceSet?, in registry: inout Registry
    ) throws
        -> TorrentID
    {
        var torrent: DaemonTorrent
        switch source {
        case .metainfo(let metainfo):
            var options = options(for: settings, hash: metainfo.wireInfoHash, registry)
            options.filePriorities = settings.enginePriorities(fileCount: metainfo.files.count)
            let renamedPaths = finishRenames(of: metainfo, settings: settings)
            options.filePaths = renamedPaths
            let id = try engine.add(metainfo, options: options)
            torrent = DaemonTorrent(id: id, metainfo: metainfo, settings: settings, changeLog: changeLog)
            torrent.renamedPaths = renamedPaths
        case .magnet(let magnet):
            guard let hash = magnet.wireInfoHash else {
                throw RPCFailure("the magnet link names no infohash")
            }
            let id = try engine.add(magnet: magnet, options: options(for: settings, hash: hash, registry))
            torrent = DaemonTorrent(
                id: id, magnet: magnet, hash: hash, settings: settings, changeLog: changeLog)
        }
        let id = torrent.id
        torrent.restoredVerified = verified
        enlist(&torrent, in: &registry)
        if torrent.isStopped || torrent.waiting {
            try? engine.pause(id)
        } else {
            torrent.startDate = Self.now()
        }
        registry.torrents[id] = torrent
        return id
    }

    /// The engine's options for a torrent: its folder, resume data in the state folder, seeding once
    /// complete, and its own limits (the session's rates apply too unless it does not honour them).
    func options(for settings: StoredTorrent, hash: InfoHash, _ registry: Registry) -> DownloadOptions {
        var options = DownloadOptions(
            downloadDirectory: settings.incompleteDirectory ?? settings.downloadDirectory, peers: [])
        if settings.incompleteDirectory != nil { options.completedDirectory = settings.downloadDirectory }
        options.resumeFolder = state.resumeFolder
        options.trackers = settings.announceList?.tiers
        options.seedWhenComplete = true
        // pex-enabled applies from each torrent's next start.
        options.usePeerExchange = registry.session.pexEnabled
        options.maximumPeers = max(1, settings.peerLimit)
        options.maximumUploadRateBytesPerSecond =
            settings.uploadLimited ? settings.uploadLimit.saturatingProduct(1000) : 0
        options.maximumDownloadRateBytesPerSecond =
            settings.downloadLimited ? settings.downloadLimit.saturatingProduct(1000) : 0
        options.honorsSharedRates = settings.honorsSessionLimits
        switch RatioLimitMode(rawValue: settings.seedRatioMode) ?? .global {
        case .single: options.seedRatioLimit = settings.seedRatioLimit
        case .global where registry.session.seedRatioLimited:
            options.seedRatioLimit = registry.session.seedRatioLimit
        case .global, .unlimited: options.seedRatioLimit = nil
        }
        return options
    }

    // MARK: Reading

    public func torrents(_ selection: TorrentSelection, fields: Set<TorrentField>) async -> TorrentListing {
        let now = Self.now()
        let parts = RPCSnapshotParts(fields)
        return registry.withLock { registry in
            let chosen = Self.resolve(selection, in: registry, now: now)
            let torrents = chosen.map { torrent in
                torrent.rpcSnapshot(
                    engine: engine.snapshot(torrent.id), parts: parts,
                    torrentFile: parts.torrentFile ? state.torrentFile(torrent.hash) : "",
                    session: registry.session, now: now,
                    trackerStatus: parts.trackerStats ? engine.trackerStatus(of: torrent.id) : [])
            }
            return TorrentListing(
                torrents: torrents, removedIDs: Self.removedIDs(selection, in: registry, now: now))
        }
    }

    /// For `recently-active`, the torrents removed in the last minute.
    static func removedIDs(_ selection: TorrentSelection, in registry: Registry, now: Int) -> [Int] {
        selection == .recentlyActive ? registry.removed.filter { now - $0.at <= 60 }.map(\.id) : []
    }

    /// The torrents a selection names, by id.
    static func resolve(_ selection: TorrentSelection, in registry: Registry, now: Int) -> [DaemonTorrent] {
        // Sorted by the ids the dictionary holds beside each torrent: comparing `$0.id.value` read each
        // torrent's box, and moving torrents retained them, a tenth of a torrent-get of 10,000.
        var byID = registry.torrents.map { ($0.key.value, $0.value) }
        byID.sort { $0.0 < $1.0 }
        let all = byID.map(\.1)
        switch selection {
        case .all: return all
        case .recentlyActive: return all.filter { now - $0.settings.activityDate <= 60 }
        case .only:
            let matcher = selection.matcher
            return all.filter { matcher.names(id: $0.id.value, hash: $0.hash) }
        }
    }

    // MARK: Changing

    public func perform(_ action: TorrentAction, on selection: TorrentSelection) async throws {
        let chosen = registry.withLock { Self.resolve(selection, in: $0, now: Self.now()) }
        if let move = action.queueMove { return try self.move(chosen.map(\.id), move) }
        switch action {
        case .start: return try setPaused(false, chosen.map(\.id))
        case .startNow: return try setPaused(false, chosen.map(\.id), bypassingQueue: true)
        case .stop: return try setPaused(true, chosen.map(\.id))
        default: break
        }
        for torrent in chosen {
            switch action {
            case .start, .startNow, .stop: break
            case .verify: await verify(torrent.id)
            // A stopped torrent has nobody to announce; the engine ignores it, as Transmission does.
            case .reannounce: try? engine.reannounce(torrent.id)
            case .queueMoveTop, .queueMoveUp, .queueMoveDown, .queueMoveBottom: break
            }
        }
    }

    /// Pauses or starts torrents and keeps the choice. Starting a torrent that is not paused restarts
    /// it if it ended (after an error or its seed limit); a start waits for the torrent's turn in the
    /// queue unless `bypassingQueue` (torrent-start-now); a running torrent just goes on. The queue is
    /// looked at once, after all of them (once per torrent was quadratic in the torrents held).
    func setPaused(_ paused: Bool, _ ids: [TorrentID], bypassingQueue: Bool = false) throws {
        try registry.withLock { registry throws in
            defer { startQueuedTorrents(in: &registry) }
            for id in ids {
                guard var torrent = registry.torrents[id] else { continue }
                torrent.pauseAfterCheck = false
                if torrent.settings.paused != paused || torrent.settings.seedLimitReached != nil {
                    torrent.settings.paused = paused
                    torrent.settings.seedLimitReached = nil
                    try state.save(savedSettings(of: torrent), hash: torrent.hash)
                    if paused { torrent.startDate = 0 }
                }
                if paused {
                    torrent.waiting = false
                    torrent.bypassesQueue = false
                    try? engine.pause(id)
                } else {
                    startQueued(&torrent, bypassingQueue: bypassingQueue)
                }
                registry.torrents[id] = torrent
            }
        }
    }

    /// The engine has no recheck of its own: the torrent is stopped, its resume data deleted and
    /// started again, which checks every piece on disk. A paused torrent is paused again once checked,
    /// and one waiting in the queue goes on waiting.
    func verify(_ id: TorrentID) async {
        let (wasPaused, hash) = registry.withLock { registry -> (Bool, InfoHash?) in
            guard let torrent = registry.torrents[id] else { return (false, nil) }
            return (torrent.isStopped || torrent.waiting, torrent.hash)
        }
        guard let hash else { return }
        await stopInEngine(id)
        unlink(state.resumeFile(hash))
        registry.withLock { registry in
            guard var torrent = registry.torrents[id] else { return }
            torrent.pauseAfterCheck = wasPaused
            torrent.restoredVerified = nil
            try? engine.resume(id)
            registry.torrents[id] = torrent
        }
    }

    /// Pauses a running torrent and waits (up to 15 s) until its session has ended, so that nothing it
    /// does afterwards (saving resume data, writing) can race what the caller does next.
    func stopInEngine(_ id: TorrentID) async {
        guard let activity = engine.snapshot(id)?.activity else { return }
        switch activity {
        case .starting, .fetchingMetadata, .checking, .downloading, .seeding: break
        case .paused, .finished, .failed: return
        case .moving:
            // No session to wait for: it stays stopped once its files are moved.
            try? engine.pause(id)
            return
        }
        let before = engineEvents.withLock { $0.ended[id, default: 0] }
        try? engine.pause(id)
        await waitFor(seconds: 15) { engineEvents.withLock { $0.ended[id, default: 0] } > before }
    }

    private func waitFor(seconds: Int, _ condition: () -> Bool) async {
        for _ in 0..<(seconds * 20) {
            if condition() { return }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    public func change(_ selection: TorrentSelection, _ changes: TorrentChanges) async throws {
        if let location = changes.location {
            try await setLocation(of: selection, to: location, move: false)
        }
        if changes.editsTrackers { try editTrackers(of: selection, changes) }
        try registry.withLock { registry throws in
            for torrent in Self.resolve(selection, in: registry, now: Self.now()) {
                var changed = torrent
                try Self.apply(changes, to: &changed.settings, fileCount: torrent.metainfo?.files.count ?? 0)
                try state.save(savedSettings(of: changed), hash: torrent.hash)
                registry.torrents[torrent.id] = changed
                applyLimits(of: changed, in: registry)
                // A magnet link's torrent has no files to choose from until its metadata arrives.
                guard let fileCount = torrent.metainfo?.files.count,
                    changed.settings.unwantedFiles != torrent.settings.unwantedFiles
                        || changed.settings.filePriorities != torrent.settings.filePriorities
                else { continue }
                try? engine.setFilePriorities(
                    torrent.id, changed.settings.enginePriorities(fileCount: fileCount))
            }
            if let position = changes.queuePosition {
                try place(
                    Self.resolve(selection, in: registry, now: Self.now()).map(\.id), at: position,
                    in: &registry)
            }
        }
    }

    /// Lays torrent-set's (or torrent-add's) changes over kept settings. `change` hands the rate and
    /// peer limits and the seed ratio to the engine at once; the idle limit is the daemon's own
    /// (`stopIdleSeeds`), and the queue position `change` applies to the whole queue.
    static func apply(_ changes: TorrentChanges, to settings: inout StoredTorrent, fileCount: Int) throws {
        for selection in [
            changes.filesWanted, changes.filesUnwanted, changes.priorityHigh, changes.priorityNormal,
            changes.priorityLow,
        ] {
            if case .indices(let indices) = selection,
                indices.contains(where: { !(0..<fileCount).contains($0) })
            {
                throw RPCFailure("file index out of range")
            }
        }
        func indices(_ selection: FileSelection) -> [Int] {
            switch selection {
            case .all: Array(0..<fileCount)
            case .indices(let list): list
            }
        }
        if let labels = changes.labels { settings.labels = labels }
        if let value = changes.bandwidthPriority { settings.bandwidthPriority = value.rawValue }
        if let value = changes.downloadLimit { settings.downloadLimit = value }
        if let value = changes.downloadLimited { settings.downloadLimited = value }
        if let value = changes.uploadLimit { settings.uploadLimit = value }
        if let value = changes.uploadLimited { settings.uploadLimited = value }
        if let value = changes.honorsSessionLimits { settings.honorsSessionLimits = value }
        if let value = changes.peerLimit { settings.peerLimit = value }
        if let value = changes.seedRatioLimit { settings.seedRatioLimit = value }
        if let value = changes.seedRatioMode { settings.seedRatioMode = value.rawValue }
        if let value = changes.seedIdleLimit { settings.seedIdleLimit = value }
        if let value = changes.seedIdleMode { settings.seedIdleMode = value.rawValue }
        if let value = changes.group { settings.group = value }
        if let wanted = changes.filesWanted {
            let wantedAgain = Set(indices(wanted))
            settings.unwantedFiles.removeAll { wantedAgain.contains($0) }
        }
        if let unwanted = changes.filesUnwanted {
            settings.unwantedFiles = Array(Set(settings.unwantedFiles).union(indices(unwanted))).sorted()
        }
        for (selection, priority) in [
            (changes.priorityHigh, Priority.high), (changes.priorityNormal, .normal),
            (changes.priorityLow, .low),
        ] {
            guard let selection else { continue }
            for index in indices(selection) {
                settings.filePriorities[index] = priority == .normal ? nil : priority.rawValue
            }
        }
    }

    // MARK: Removing

    public func remove(_ selection: TorrentSelection, deletingLocalData: Bool) async throws {
        // Forgotten and out of the registry in one hold of its lock: a save made between the two (the
        // bookkeeping's, another request's) wrote the torrent's state file again, and a kill then
        // brought it back. Forgotten before the engine lets go: a kill from here on does not either.
        let chosen = registry.withLock { registry in
            let now = Self.now()
            let chosen = Self.resolve(selection, in: registry, now: now)
            for torrent in chosen {
                state.forget(torrent.hash)
                registry.torrents[torrent.id] = nil
                registry.removed.append((torrent.id.value, now))
            }
            registry.removed.removeAll { now - $0.at > 60 }
            // The queue closes up once for all of them: each shifted position is saved once, not once
            // per removed torrent.
            leaveQueue(Set(chosen.map(\.id)), in: &registry)
            return chosen
        }
        for torrent in chosen { try? engine.remove(torrent.id) }
        var problems: [String] = []
        for torrent in chosen {
            logger.info("removed \(torrent.name) (\(torrent.id))")
            guard deletingLocalData else { continue }
            // Its files are deleted only once the engine has let go of them.
            await waitFor(seconds: 15) { engineEvents.withLock { $0.removed.contains(torrent.id) } }
            problems += LocalDataRemoval.remove(
                files: torrent.filePaths,
                beneath: torrent.settings.incompleteDirectory ?? torrent.settings.downloadDirectory)
        }
        if !problems.isEmpty {
            throw RPCFailure("some files could not be deleted: " + problems.joined(separator: "; "))
        }
    }

}
