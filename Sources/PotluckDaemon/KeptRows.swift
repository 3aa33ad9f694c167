import Engine
import TransmissionRPC

/// torrent-get's rows of one list layout (the last asked for), each torrent's kept for as long as it
/// stays true: a snapshot of the daemon's torrent and of the engine's record per torrent per call
/// took about 60% of a torrent-get of 10,000, most of which rest and do not change.
///
/// A row stays true while the daemon's torrent, the engine's record and the session are as they were
/// (their revisions), and, for a row that shows time passing, within the same second.
struct KeptRows: Sendable {
    struct Row: Sendable {
        var torrent: Int
        var engine: Int?
        var session: Int
        /// For a row that shows time passing (`isStalled`, `etaIdle`), the second it was made in.
        var second: Int?
        var bytes: [UInt8]
    }

    var layout: TorrentRowLayout?
    var rows: [TorrentID: Row] = [:]
}

extension EngineBackend {
    public func torrentRows(_ selection: TorrentSelection, layout: TorrentRowLayout) async -> TorrentListing?
    {
        let now = Self.now()
        // A list's fields need no costly part (`TorrentField.listFields`).
        let parts = RPCSnapshotParts([])
        return registry.withLock { registry in
            if registry.keptRows.layout != layout { registry.keptRows = KeptRows(layout: layout) }
            let session = registry.session
            let stalledAfter = Self.stalledAfterSeconds(session)
            let chosen = Self.resolve(selection, in: registry, now: now)
            var rows: [[UInt8]] = []
            rows.reserveCapacity(chosen.count)
            let ids = chosen.map(\.id)
            // Asked before the snapshots: a change in between makes a row that is made again.
            let engineRevisions = engine.revisions(of: ids)
            if registry.keptRows.rows.isEmpty { registry.keptRows.rows.reserveCapacity(chosen.count) }
            for (index, torrent) in chosen.enumerated() {
                let id = ids[index]
                let engineRevision = engineRevisions[index]
                if let kept = registry.keptRows.rows[id], kept.torrent == torrent.revision,
                    kept.engine == engineRevision, kept.session == registry.sessionRevision,
                    kept.second == nil || kept.second == now
                {
                    rows.append(kept.bytes)
                    continue
                }
                let engineSnapshot = engine.snapshot(id)
                let snapshot = torrent.rpcSnapshot(
                    engine: engineSnapshot, parts: parts, torrentFile: "", session: session, now: now)
                let row = layout.row(of: snapshot)
                // A download stalls once idle long enough; a seed's idle limit counts down.
                let timed =
                    (stalledAfter != nil && torrent.queueDirection(engineSnapshot) == .download)
                    || (snapshot.status == .seeding && torrent.seedIdleLimit(session) != nil)
                registry.keptRows.rows[id] = KeptRows.Row(
                    torrent: torrent.revision, engine: engineRevision, session: registry.sessionRevision,
                    second: timed ? now : nil, bytes: row)
                rows.append(row)
            }
            return TorrentListing(rows: rows, removedIDs: Self.removedIDs(selection, in: registry, now: now))
        }
    }
}
