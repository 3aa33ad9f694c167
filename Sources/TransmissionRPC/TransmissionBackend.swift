/// The torrents torrent-get reports, and for `recently-active` the ids removed lately.
public struct TorrentListing: Sendable, Hashable {
    public var torrents: [TorrentSnapshot]
    /// Ids of torrents removed in the last minute; reported only for `.recentlyActive`.
    public var removedIDs: [Int]
    /// In place of `torrents`, each torrent already written (`TransmissionBackend.torrentRows`).
    public var rows: [[UInt8]]?

    public init(torrents: [TorrentSnapshot], removedIDs: [Int] = []) {
        self.torrents = torrents
        self.removedIDs = removedIDs
    }

    public init(rows: [[UInt8]], removedIDs: [Int] = []) {
        torrents = []
        self.rows = rows
        self.removedIDs = removedIDs
    }
}

/// What torrent-add did.
public enum TorrentAddOutcome: Sendable, Hashable {
    case added(TorrentIdentity)
    /// The torrent was already in the session; still a success for the client.
    case duplicate(TorrentIdentity)
}

/// Free and total bytes of a directory's filesystem (free-space).
public struct DiskSpace: Sendable, Hashable {
    public var freeBytes: Int
    public var totalBytes: Int

    public init(freeBytes: Int, totalBytes: Int) {
        self.freeBytes = freeBytes
        self.totalBytes = totalBytes
    }
}

/// The engine as the RPC drives it. The RPC layer has decoded and type-checked every argument, so an
/// implementation only resolves torrents and acts.
///
/// Selections name torrents by id or hash; names that match no torrent are skipped, not errors, as in
/// Transmission. Methods that throw report an ``RPCFailure``'s message as the call's `result` (any other
/// error by its description); Transmission's messages for the usual cases are "file index out of range",
/// "invalid or corrupt torrent file" and "unrecognized info".
public protocol TransmissionBackend: Sendable {
    /// Snapshots of the selected torrents in the session's order. `fields` says which parts the client
    /// asked for, so costly ones (peers, pieces, tracker stats) can be skipped; the rest may keep defaults.
    func torrents(_ selection: TorrentSelection, fields: Set<TorrentField>) async -> TorrentListing

    /// The selected torrents as `torrents(_:fields:)` would give them, each already written as
    /// `layout.row(of:)` writes it (`TorrentListing.rows`), for a backend that keeps each torrent's row
    /// for as long as it stays true; nil (the default): they are written from `torrents(_:fields:)`.
    /// Asked only for a layout of list fields (`TorrentRowLayout.isList`), and only for a reply that
    /// is written, not made a `JSONValue`.
    func torrentRows(_ selection: TorrentSelection, layout: TorrentRowLayout) async -> TorrentListing?

    func addTorrent(_ request: TorrentAddRequest) async throws -> TorrentAddOutcome

    /// Start, stop, verify, reannounce or move in the queue.
    func perform(_ action: TorrentAction, on selection: TorrentSelection) async throws

    func change(_ selection: TorrentSelection, _ changes: TorrentChanges) async throws

    func remove(_ selection: TorrentSelection, deletingLocalData: Bool) async throws

    /// Points the torrents at `location` (absolute), moving their data there when `move` is true.
    func setLocation(of selection: TorrentSelection, to location: String, move: Bool) async throws

    /// Renames the file or folder at `path` inside torrent `id` to `name` (tr_torrentRenamePath).
    func renamePath(inTorrent id: Int, from path: String, to name: String) async throws

    func sessionSettings() async -> SessionSettings

    func updateSession(_ changes: SessionChanges) async throws

    func sessionStatistics() async -> SessionStatistics

    /// The filesystem space at an absolute path.
    func freeSpace(at path: String) async throws -> DiskSpace

    /// Whether the peer port is reachable from outside.
    func testPort() async throws -> Bool

    /// Shuts the session down after this reply.
    func closeSession() async
}

extension TransmissionBackend {
    public func torrentRows(_ selection: TorrentSelection, layout: TorrentRowLayout) async -> TorrentListing?
    {
        nil
    }
}
