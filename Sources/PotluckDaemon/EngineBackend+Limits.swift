import Engine
import TransmissionRPC

extension SessionSettings {
    /// The engine's payload limits for all torrents together (0: none): the alternative speeds while
    /// they are on, else the regular ones that are enabled. Speeds are kB/s of 1000 bytes.
    var uploadRateBytesPerSecond: Int {
        altSpeedEnabled
            ? altSpeedUp.saturatingProduct(1000)
            : speedLimitUpEnabled ? speedLimitUp.saturatingProduct(1000) : 0
    }

    var downloadRateBytesPerSecond: Int {
        altSpeedEnabled
            ? altSpeedDown.saturatingProduct(1000)
            : speedLimitDownEnabled ? speedLimitDown.saturatingProduct(1000) : 0
    }
}

extension EngineBackend {
    /// The session keys a torrent's own engine limits depend on (those that follow the session's ratio).
    static let torrentLimitKeys: Set<SessionSettingKey> = [.seedRatioLimit, .seedRatioLimited]

    /// Hands the engine the limits of a changed session at once: its global rates and connection
    /// budget, and, when `changed` has a key they follow, every torrent's own.
    func applySessionLimits(changed: Set<SessionSettingKey>, in registry: Registry) {
        engine.setGlobalRates(
            uploadBytesPerSecond: registry.session.uploadRateBytesPerSecond,
            downloadBytesPerSecond: registry.session.downloadRateBytesPerSecond)
        engine.setMaximumConnections(registry.session.peerLimitGlobal)
        guard !changed.isDisjoint(with: Self.torrentLimitKeys) else { return }
        for torrent in registry.torrents.values { applyLimits(of: torrent, in: registry) }
    }

    /// Hands the engine a torrent's own limits at once (its rates, peer limit and seed ratio).
    func applyLimits(of torrent: DaemonTorrent, in registry: Registry) {
        let limits = options(for: torrent.settings, hash: torrent.hash, registry).limits
        do {
            try engine.setLimits(torrent.id, limits)
        } catch {
            logger.warning("\(torrent.name): its limits could not be changed: \(error)")
        }
    }
}
