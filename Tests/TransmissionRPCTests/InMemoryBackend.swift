import TorrentModel
import TransmissionRPC

/// A session held in memory, recording what the RPC asked of it: the test double for dispatch.
actor InMemoryBackend: TransmissionBackend {
    var torrents: [TorrentSnapshot]
    var removedIDs: [Int] = []
    /// Ids the backend considers recently active.
    var recentlyActiveIDs: Set<Int> = []
    var settings = SessionSettings(downloadDirectory: "/srv/downloads", configDirectory: "/var/lib/potluck")
    var statistics = SessionStatistics()
    var actions: [(TorrentAction, [Int])] = []
    var lastAdd: TorrentAddRequest?
    var lastChanges: TorrentChanges?
    var renamed: [(id: Int, path: String, name: String)] = []
    var isClosed = false
    /// Asked for by torrent-get, to check that the RPC passes the client's fields on.
    var lastRequestedFields: Set<TorrentField> = []

    init(torrents: [TorrentSnapshot] = []) { self.torrents = torrents }

    private func resolve(_ selection: TorrentSelection) -> [Int] {
        switch selection {
        case .recentlyActive: return torrents.map(\.id).filter(recentlyActiveIDs.contains)
        default:
            let matcher = selection.matcher
            return torrents.filter { matcher.names(id: $0.id, hash: $0.hash) }.map(\.id)
        }
    }

    private func update(_ selection: TorrentSelection, _ body: (inout TorrentSnapshot) -> Void) {
        let ids = Set(resolve(selection))
        for index in torrents.indices where ids.contains(torrents[index].id) { body(&torrents[index]) }
    }

    func torrents(_ selection: TorrentSelection, fields: Set<TorrentField>) -> TorrentListing {
        lastRequestedFields = fields
        let ids = Set(resolve(selection))
        return TorrentListing(
            torrents: torrents.filter { ids.contains($0.id) },
            removedIDs: selection == .recentlyActive ? removedIDs : [])
    }

    /// Rows as a backend that keeps them gives them, for the endpoint to write.
    func torrentRows(_ selection: TorrentSelection, layout: TorrentRowLayout) -> TorrentListing? {
        let listing = torrents(selection, fields: Set(layout.fields))
        return TorrentListing(rows: listing.torrents.map(layout.row), removedIDs: listing.removedIDs)
    }

    func addTorrent(_ request: TorrentAddRequest) throws -> TorrentAddOutcome {
        lastAdd = request
        guard case .metainfo(let bytes) = request.source else { throw RPCFailure("unrecognized info") }
        // The test metainfo is just 20 bytes standing for an infohash.
        guard let hash = InfoHash(bytes) else { throw RPCFailure("invalid or corrupt torrent file") }
        if let existing = torrents.first(where: { $0.hash == hash }) {
            return .duplicate(TorrentIdentity(id: existing.id, name: existing.name, hash: hash))
        }
        let id = (torrents.map(\.id).max() ?? 0) + 1
        var torrent = TorrentSnapshot(id: id, hash: hash, name: "added \(id)")
        torrent.downloadDir = request.downloadDirectory ?? settings.downloadDirectory
        torrent.labels = request.changes.labels ?? []
        torrent.status = request.paused == true ? .stopped : .downloading
        torrents.append(torrent)
        return .added(TorrentIdentity(id: id, name: torrent.name, hash: hash))
    }

    func perform(_ action: TorrentAction, on selection: TorrentSelection) {
        actions.append((action, resolve(selection)))
        switch action {
        case .start, .startNow: update(selection) { $0.status = .downloading }
        case .stop: update(selection) { $0.status = .stopped }
        default: break
        }
    }

    func change(_ selection: TorrentSelection, _ changes: TorrentChanges) throws {
        lastChanges = changes
        if case .indices(let indices) = changes.filesWanted,
            let torrent = torrents.first(where: { resolve(selection).contains($0.id) }),
            indices.contains(where: { $0 >= torrent.files.count })
        {
            throw RPCFailure("file index out of range")
        }
        update(selection) { torrent in
            if let labels = changes.labels { torrent.labels = labels }
            if let limit = changes.downloadLimit { torrent.downloadLimit = limit }
            if let limited = changes.downloadLimited { torrent.downloadLimited = limited }
            if let ratio = changes.seedRatioLimit { torrent.seedRatioLimit = ratio }
            if let mode = changes.seedRatioMode { torrent.seedRatioMode = mode }
        }
    }

    func remove(_ selection: TorrentSelection, deletingLocalData: Bool) {
        let ids = Set(resolve(selection))
        torrents.removeAll { ids.contains($0.id) }
        removedIDs += ids.sorted()
    }

    func setLocation(of selection: TorrentSelection, to location: String, move: Bool) {
        update(selection) { $0.downloadDir = location }
    }

    func renamePath(inTorrent id: Int, from path: String, to name: String) {
        renamed.append((id, path, name))
    }

    func sessionSettings() -> SessionSettings { settings }

    func updateSession(_ changes: SessionChanges) { settings = changes.applied(to: settings) }

    func sessionStatistics() -> SessionStatistics { statistics }

    func freeSpace(at path: String) throws -> DiskSpace {
        guard path.hasPrefix("/srv") else { throw RPCFailure("No such file or directory") }
        return DiskSpace(freeBytes: 1_000_000, totalBytes: 4_000_000)
    }

    func testPort() -> Bool { true }

    func closeSession() { isClosed = true }
}

extension InMemoryBackend {
    func markRecentlyActive(_ ids: Set<Int>) { recentlyActiveIDs = ids }
    func setStatistics(_ statistics: SessionStatistics) { self.statistics = statistics }
}
