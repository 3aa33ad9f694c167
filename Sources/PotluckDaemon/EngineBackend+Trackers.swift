import TransmissionRPC

extension TorrentChanges {
    /// Whether torrent-set edits the announce list.
    var editsTrackers: Bool {
        trackerList != nil || trackerAdd != nil || trackerRemove != nil || trackerReplace != nil
    }
}

extension DaemonTorrent {
    /// Its trackers as clients see them: as last edited, else the metainfo's (or the magnet link's,
    /// each `tr` a tier of its own).
    var announceList: AnnounceList {
        settings.announceList
            ?? AnnounceList(tiers: metainfo?.trackers ?? magnet?.trackers.map { [$0] } ?? [])
    }
}

extension EngineBackend {
    /// torrent-set's `trackerList`, `trackerRemove`, `trackerReplace` and `trackerAdd`, in that order,
    /// for every selected torrent: an edit refused for one torrent changes none. The edited list is
    /// kept before the engine announces to it, so that a restart or a kill keeps it.
    func editTrackers(of selection: TorrentSelection, _ changes: TorrentChanges) throws {
        try registry.withLock { registry throws in
            let chosen = Self.resolve(selection, in: registry, now: Self.now())
            let newList = try changes.trackerList.map { text throws(RPCFailure) in
                try AnnounceList.parse(text)
            }
            let edited = try chosen.map { torrent throws in
                (torrent, try Self.edited(torrent.announceList, by: changes, newList: newList))
            }
            for (torrent, list) in edited where list != torrent.announceList {
                var changed = torrent
                changed.settings.announceList = list
                try state.save(savedSettings(of: changed), hash: torrent.hash)
                registry.torrents[torrent.id] = changed
                do {
                    try engine.setTrackers(torrent.id, list.tiers)
                } catch {
                    logger.warning(
                        "\(torrent.name) (\(torrent.id)): its trackers could not be changed: \(error)")
                }
                logger.info("\(torrent.name) (\(torrent.id)): trackers now \(list.tiers)")
            }
        }
    }

    /// `newList`: `changes.trackerList` parsed.
    static func edited(
        _ list: AnnounceList, by changes: TorrentChanges, newList: [[String]]?
    ) throws(RPCFailure) -> AnnounceList {
        var list = list
        if let newList { try list.setList(tiers: newList) }
        if let ids = changes.trackerRemove { try list.remove(ids: ids) }
        if let replacements = changes.trackerReplace { try list.replace(replacements) }
        if let urls = changes.trackerAdd { try list.add(urls) }
        return list
    }
}
