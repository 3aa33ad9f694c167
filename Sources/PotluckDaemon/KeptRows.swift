import Engine
import TransmissionRPC

/// torrent-get's rows of one list layout, every torrent's, in id order, brought up to date at each
/// call by making again only the rows of the torrents that changed since the last: those the daemon's
/// change log (`TorrentChangeLog`) or the engine (`Engine.changes(since:)`) name, all of them when the
/// session changed, and the rows that show time passing once a second. Looking at each of 10,000
/// torrents per call (its revisions, its kept row) took half of a torrent-get while seeding, most of
/// whose torrents rest and do not change.
///
/// Invariant: `rows[i]` is the row of the torrent `ids[i]` as of the marks; `ids` is sorted and holds
/// every torrent of the registry when the marks were taken.
struct KeptRows: Sendable {
    /// How many layouts' rows are kept, the last asked for: clients poll a short layout (`id`,
    /// `status`) between their lists, and each switch made every row again (40 ms at 10,000).
    static let layoutsKept = 2

    var layout: TorrentRowLayout?
    var ids: [TorrentID] = []
    var rows: [[UInt8]] = []
    /// Positions of the rows that show time passing (`isStalled`, `etaIdle`), made in `second`.
    var timed: [Int] = []
    var second = 0
    /// The engine's and the daemon's marks, and the session's revision, the rows are up to date with.
    var engineMark: Int?
    var torrentsMark = 0
    var sessionRevision = 0

    /// Where `id`'s row is, if it has one.
    func position(of id: TorrentID) -> Int? {
        var low = 0
        var high = ids.count
        while low < high {
            let middle = (low + high) / 2
            if ids[middle].value < id.value { low = middle + 1 } else { high = middle }
        }
        return low < ids.count && ids[low] == id ? low : nil
    }
}

extension EngineBackend {
    public func torrentRows(_ selection: TorrentSelection, layout: TorrentRowLayout) async -> TorrentListing?
    {
        let now = Self.now()
        return registry.withLock { registry in
            // Taken out while it changes, so that its arrays are not copied; put back first.
            var kept = KeptRows(layout: layout)
            if let index = registry.keptRows.firstIndex(where: { $0.layout == layout }) {
                kept = registry.keptRows.remove(at: index)
            }
            // Asked before the snapshots: a change in between makes a row that is made again.
            let engineChanges = engine.changes(since: kept.engineMark)
            let torrentsChanged = kept.engineMark.flatMap { _ in
                changeLog.changedIDs(since: kept.torrentsMark)
            }
            let torrentsMark = changeLog.mark
            if !bringUpToDate(&kept, in: registry, changed: engineChanges.changed, torrentsChanged, now: now)
            {
                makeEveryRow(&kept, in: registry, now: now)
            }
            kept.engineMark = engineChanges.mark
            kept.torrentsMark = torrentsMark
            kept.sessionRevision = registry.sessionRevision
            kept.second = now
            let rows: [[UInt8]]
            if selection == .all {
                rows = kept.rows
            } else {
                rows = Self.resolve(selection, in: registry, now: now).compactMap { torrent in
                    kept.position(of: torrent.id).map { kept.rows[$0] }
                }
            }
            registry.keptRows.insert(kept, at: 0)
            registry.keptRows = Array(registry.keptRows.prefix(KeptRows.layoutsKept))
            return TorrentListing(rows: rows, removedIDs: Self.removedIDs(selection, in: registry, now: now))
        }
    }

    /// Makes again the rows of the torrents changed since `kept`'s marks; false when that cannot tell
    /// (the engine or the log forgot, the session changed, torrents came or went).
    private func bringUpToDate(
        _ kept: inout KeptRows, in registry: Registry, changed engineChanged: Set<TorrentID>?,
        _ torrentsChanged: Set<TorrentID>?, now: Int
    ) -> Bool {
        guard let engineChanged, let torrentsChanged, kept.sessionRevision == registry.sessionRevision,
            kept.ids.count == registry.torrents.count
        else { return false }
        var positions: Set<Int> = now == kept.second ? [] : Set(kept.timed)
        for id in torrentsChanged where registry.torrents[id] != nil {
            // One added (and another removed, as the count is the same): every row again.
            guard let position = kept.position(of: id) else { return false }
            positions.insert(position)
        }
        for id in engineChanged {
            if let position = kept.position(of: id) { positions.insert(position) }
        }
        guard !positions.isEmpty else { return true }
        var timed = Set(kept.timed)
        for position in positions {
            guard let torrent = registry.torrents[kept.ids[position]] else { return false }
            let (row, isTimed) = makeRow(
                of: torrent, layout: kept.layout!, session: registry.session, now: now)
            kept.rows[position] = row
            if isTimed { timed.insert(position) } else { timed.remove(position) }
        }
        kept.timed = timed.sorted()
        return true
    }

    /// On every core: the first call after a restart, or of a new layout, makes all 10,000 rows (about
    /// 30 ms of CPU), and was the slowest call a client saw.
    private func makeEveryRow(_ kept: inout KeptRows, in registry: Registry, now: Int) {
        let torrents = Self.resolve(.all, in: registry, now: now)
        let (layout, session) = (kept.layout!, registry.session)
        let made = torrents.concurrentMap { torrent in
            makeRow(of: torrent, layout: layout, session: session, now: now)
        }
        kept.ids = torrents.map(\.id)
        kept.rows = made.map(\.row)
        kept.timed = made.indices.filter { made[$0].isTimed }
    }

    /// A torrent's row, and whether it shows time passing: a download stalls once idle long enough; a
    /// seed's idle limit counts down.
    private func makeRow(
        of torrent: DaemonTorrent, layout: TorrentRowLayout, session: SessionSettings, now: Int
    ) -> (row: [UInt8], isTimed: Bool) {
        let engineSnapshot = engine.snapshot(torrent.id)
        // A list's fields need no costly part (`TorrentField.listFields`).
        let snapshot = torrent.rpcSnapshot(
            engine: engineSnapshot, parts: RPCSnapshotParts([]), torrentFile: "", session: session, now: now)
        let isTimed =
            (Self.stalledAfterSeconds(session) != nil && torrent.queueDirection(engineSnapshot) == .download)
            || (snapshot.status == .seeding && torrent.seedIdleLimit(session) != nil)
        return (layout.row(of: snapshot), isTimed)
    }
}
