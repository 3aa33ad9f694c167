/// How torrent-get lays out `torrents` (`format`).
public enum TorrentGetFormat: String, Sendable, Hashable {
    /// One object per torrent, keyed by field.
    case objects
    /// A first row of field names, then one row of values per torrent.
    case table
}

/// A decoded RPC call: the method and its type-checked arguments.
public enum RPCRequest: Sendable, Hashable {
    /// `fields` nil: every field.
    case sessionGet(fields: [String]?)
    case sessionSet(SessionChanges)
    case sessionStats
    case sessionClose
    case portTest
    case freeSpace(path: String)
    case blocklistUpdate
    case torrentAdd(TorrentAddRequest)
    /// Unknown field names are left out, as Transmission does, so newer clients still get the rest.
    case torrentGet(fields: [TorrentField], selection: TorrentSelection, format: TorrentGetFormat)
    case torrentSet(TorrentSelection, TorrentChanges)
    case torrentAction(TorrentAction, TorrentSelection)
    case torrentRemove(TorrentSelection, deleteLocalData: Bool)
    case torrentSetLocation(TorrentSelection, location: String, move: Bool)
    case torrentRenamePath(TorrentSelection, path: String, name: String)
}
