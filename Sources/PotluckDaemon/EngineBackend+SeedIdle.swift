import Engine
import TransmissionRPC

/// The seed idle limit, which the engine does not know of: the daemon stops a seed that nobody has
/// downloaded from for too long, looking once a second.
extension DaemonTorrent {
    /// The idle limit that applies to it under the session's settings, if any.
    func seedIdleLimit(_ session: SessionSettings) -> SeedIdleLimit? {
        SeedIdleLimit(
            mode: IdleLimitMode(rawValue: settings.seedIdleMode) ?? .global,
            torrentMinutes: settings.seedIdleLimit, sessionEnabled: session.idleSeedingLimitEnabled,
            sessionMinutes: session.idleSeedingLimit)
    }
}

extension EngineBackend {
    /// Stops every seeding torrent whose idle limit is reached. Like a reached ratio it is stopped
    /// (finished), not paused by a client, and kept so at once: it stays stopped across restarts until
    /// torrent-start starts it again.
    func stopIdleSeeds(in registry: inout Registry, now: Int) {
        for (id, var torrent) in registry.torrents where !torrent.isStopped && !torrent.waiting {
            // The engine's snapshot last: most torrents have no idle limit, or have not reached it.
            guard let limit = torrent.seedIdleLimit(registry.session),
                limit.isReached(
                    startDate: torrent.startDate, activityDate: torrent.settings.activityDate, now: now),
                engine.snapshot(id)?.activity == .seeding
            else { continue }
            keepSeedLimitReached(&torrent)
            registry.torrents[id] = torrent
            try? engine.pause(id)
            logger.info("\(torrent.name) (\(id)): idle for \(limit.minutes) minutes; seeding stopped")
        }
    }

    /// The engine ended a torrent as complete: a seed it ended at its ratio limit (every daemon torrent
    /// seeds once complete) stays stopped so, across restarts too. Kept as soon as the engine says so.
    func keepSeedLimitStop(_ id: TorrentID) {
        registry.withLock { registry in
            guard var torrent = registry.torrents[id], !torrent.isStopped, !torrent.waiting,
                engine.snapshot(id)?.activity == .finished
            else { return }
            keepSeedLimitReached(&torrent)
            registry.torrents[id] = torrent
            logger.info("\(torrent.name) (\(id)): its seed ratio limit stopped it")
        }
    }

    /// A seed limit stopped the torrent: kept before anything else, so that a kill does not start it.
    func keepSeedLimitReached(_ torrent: inout DaemonTorrent) {
        torrent.settings.seedLimitReached = true
        do {
            try state.save(savedSettings(of: torrent), hash: torrent.hash)
        } catch {
            logger.warning(
                "\(torrent.name) (\(torrent.id)): its stop by a seed limit could not be kept: \(error)")
        }
    }
}
