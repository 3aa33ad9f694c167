import Engine
import Foundation
import Glibc
import TransmissionRPC

extension EngineBackend {
    /// The session-set keys kept across restarts. The download folder and the peer port come from the
    /// command line at each start; the rest (speed limits, ratio, peer limits among them) is laid over it.
    static let persistedKeys = Set(SessionSettingKey.allCases.filter(\.isWritable)).subtracting(
        [.downloadDirectory, .peerPort]
    ).subtracting(unsupportedKeys)

    /// Features the engine does not have yet (reported off), or that only the command line turns on or
    /// off (`dht-enabled`: `--no-dht`, `lpd-enabled`: `--no-lsd`), or sets at start (`peer-port`: the
    /// listening socket stays bound): setting them changes nothing, and session-get goes on telling the
    /// truth (a port-test of a port nobody listens on would answer "closed").
    static let unsupportedKeys: Set<SessionSettingKey> = [
        .dhtEnabled, .lpdEnabled, .utpEnabled, .portForwardingEnabled, .peerPort,
    ]

    /// `settings` with the kept session-set changes laid over them (those still kept, see `persistedKeys`).
    static func sessionSettings(
        laying overrides: [String: JSONValue], over settings: SessionSettings
    )
        -> SessionSettings
    {
        var changes = SessionChanges()
        for (name, value) in overrides {
            guard let key = SessionSettingKey(rawValue: name), persistedKeys.contains(key) else { continue }
            try? changes.set(key, to: value)
        }
        return changes.applied(to: settings)
    }

    public func sessionSettings() async -> SessionSettings {
        registry.withLock { $0.session }
    }

    /// Changes take effect at once: `start-added-torrents` for the next torrent added; speed limits
    /// (the alternative ones while on), the global peer limit and the ratio limit in the engine
    /// (`applySessionLimits`); larger queues start waiting torrents (a smaller one stops none). Every
    /// change is kept in `session.json`.
    public func updateSession(_ changes: SessionChanges) async throws {
        try registry.withLock { registry throws in
            var unchanged = SessionChanges()
            for key in changes.keys.intersection(Self.unsupportedKeys) {
                try? unchanged.set(key, to: key.value(in: registry.session))
            }
            let updated = unchanged.applied(to: changes.applied(to: registry.session))
            if changes.keys.contains(.downloadDirectory) {
                try checkAllowed(updated.downloadDirectory, as: "download-dir")
            }
            if changes.keys.contains(.incompleteDirectory) && !updated.incompleteDirectory.isEmpty {
                try checkAllowed(updated.incompleteDirectory, as: "incomplete-dir")
            }
            var overrides = registry.sessionOverrides
            for key in changes.keys where Self.persistedKeys.contains(key) {
                overrides[key.rawValue] = key.value(in: updated)
            }
            try state.saveSessionSettings(overrides)
            registry.sessionOverrides = overrides
            registry.session = updated
            applySessionLimits(changed: changes.keys, in: registry)
            restartAltSpeedSchedule(ifChanged: changes.keys, in: &registry)
            startQueuedTorrents(in: &registry)
        }
    }

    /// The operator's settings (from the settings file), laid over the session without being kept
    /// in `session.json`: the file stays their home. Take effect as session-set's changes do.
    func layOperatorSettings(_ changes: SessionChanges) {
        registry.withLock { registry in
            registry.session = changes.applied(to: registry.session)
            applySessionLimits(changed: changes.keys, in: registry)
            restartAltSpeedSchedule(ifChanged: changes.keys, in: &registry)
            startQueuedTorrents(in: &registry)
        }
    }

    public func sessionStatistics() async -> SessionStatistics {
        let summary = engine.summary()
        let now = Self.now()
        return registry.withLock { registry in
            var statistics = SessionStatistics()
            statistics.torrentCount = registry.torrents.count
            // As Transmission counts them: a torrent waiting in the queue is not running.
            statistics.activeTorrentCount =
                registry.torrents.values.filter {
                    !$0.isStopped && !$0.waiting
                }.count
            statistics.pausedTorrentCount = statistics.torrentCount - statistics.activeTorrentCount
            statistics.downloadSpeed = Int(summary.downloadRateBytesPerSecond)
            statistics.uploadSpeed = Int(summary.uploadRateBytesPerSecond)
            let uploaded = registry.torrents.values.reduce(Int64(0)) { $0 + $1.runUploaded }
            let downloaded = registry.torrents.values.reduce(Int64(0)) { $0 + $1.runDownloaded }
            statistics.current.uploadedBytes = Int(uploaded)
            statistics.current.downloadedBytes = Int(downloaded)
            statistics.current.filesAdded = registry.filesAdded
            statistics.current.sessionCount = 1
            statistics.current.secondsActive = now - startedAt
            statistics.cumulative.uploadedBytes = Int(registry.totals.uploadedBytes + uploaded)
            statistics.cumulative.downloadedBytes = Int(registry.totals.downloadedBytes + downloaded)
            statistics.cumulative.filesAdded = registry.totals.filesAdded
            statistics.cumulative.sessionCount = registry.totals.sessionCount
            statistics.cumulative.secondsActive = registry.totals.secondsActive + now - startedAt
            return statistics
        }
    }

    public func freeSpace(at path: String) async throws -> DiskSpace {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else {
            throw RPCFailure("\(path): \(String(cString: strerror(errno)))")
        }
        return Self.diskSpace(available: info.f_bavail, blocks: info.f_blocks, unit: info.f_frsize)
    }

    /// Some file systems (s3fs) report nearly 2⁶⁴ bytes: the sizes are held at the largest integer.
    static func diskSpace(available: UInt, blocks: UInt, unit: UInt) -> DiskSpace {
        let unit = Int(clamping: unit)
        return DiskSpace(
            freeBytes: Int(clamping: available).saturatingProduct(unit),
            totalBytes: Int(clamping: blocks).saturatingProduct(unit))
    }

    /// Asks the outside service (`--port-test-url`) whether the peer port is reachable.
    public func testPort() async throws -> Bool {
        guard let portTestURL else {
            throw RPCFailure("port-test is turned off (--port-test-url is empty)")
        }
        let port = registry.withLock { $0.session.peerPort }
        return try await PortCheck.isOpen(port: port, template: portTestURL)
    }

    public func closeSession() async {
        logger.notice("session-close asked for: shutting down")
        closeRequested.store(true, ordering: .relaxed)
    }
}
