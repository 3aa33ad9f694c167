/// A torrent's bandwidth priority, and a file's download priority (`tr_priority_t`).
public enum Priority: Int, Sendable, Hashable, CaseIterable {
    case low = -1
    case normal = 0
    case high = 1
}

/// Whether a torrent stops seeding at a ratio (`seedRatioMode`, `tr_ratiolimit`).
public enum RatioLimitMode: Int, Sendable, Hashable, CaseIterable {
    /// Follow the session's `seedRatioLimited` and `seedRatioLimit`.
    case global = 0
    /// Stop at this torrent's `seedRatioLimit`.
    case single = 1
    /// Seed regardless of ratio.
    case unlimited = 2
}

/// Whether a torrent stops seeding after idling (`seedIdleMode`, `tr_idlelimit`).
public enum IdleLimitMode: Int, Sendable, Hashable, CaseIterable {
    /// Follow the session's `idle-seeding-limit-enabled` and `idle-seeding-limit`.
    case global = 0
    /// Stop after this torrent's `seedIdleLimit` minutes without traffic.
    case single = 1
    /// Seed regardless of activity.
    case unlimited = 2
}

/// The files a `files-wanted`, `files-unwanted` or `priority-*` argument names.
public enum FileSelection: Sendable, Hashable {
    /// An empty list, which the protocol defines as every file.
    case all
    /// File indices, each once, in torrent order; the backend answers "file index out of range" for
    /// bad ones.
    case indices([Int])
}

/// What torrent-set (and the optional parts of torrent-add) change; nil leaves a property alone.
public struct TorrentChanges: Sendable, Hashable {
    public var bandwidthPriority: Priority?
    /// Download limit in kB/s (1000 bytes), honoured while `downloadLimited`.
    public var downloadLimit: Int?
    public var downloadLimited: Bool?
    /// Upload limit in kB/s (1000 bytes), honoured while `uploadLimited`.
    public var uploadLimit: Int?
    public var uploadLimited: Bool?
    public var honorsSessionLimits: Bool?
    public var filesWanted: FileSelection?
    public var filesUnwanted: FileSelection?
    public var priorityHigh: FileSelection?
    public var priorityNormal: FileSelection?
    public var priorityLow: FileSelection?
    /// Replaces all labels; each is trimmed, non-empty and comma-free.
    public var labels: [String]?
    /// A new location for the data, found there rather than moved (as torrent-set-location without `move`).
    public var location: String?
    /// `peer-limit`: the most peers this torrent connects to.
    public var peerLimit: Int?
    public var queuePosition: Int?
    public var seedRatioLimit: Double?
    public var seedRatioMode: RatioLimitMode?
    /// Minutes without traffic before seeding stops, under `IdleLimitMode.single`.
    public var seedIdleLimit: Int?
    public var seedIdleMode: IdleLimitMode?
    /// The whole announce list: one URL per line, a blank line between tiers.
    public var trackerList: String?
    /// Announce URLs to add (`trackerAdd`, deprecated in 4.0 but still sent by Flood).
    public var trackerAdd: [String]?
    /// Tracker ids, from `trackers[].id`, to remove (`trackerRemove`).
    public var trackerRemove: [Int]?
    /// New announce URLs for trackers named by id (`trackerReplace`, deprecated in 4.0).
    public var trackerReplace: [TrackerReplacement]?
    /// Bandwidth group name.
    public var group: String?

    public init() {}
}

/// One `trackerReplace` pair: the tracker with this id (from `trackers[].id`) gets this announce URL.
public struct TrackerReplacement: Sendable, Hashable {
    public var id: Int
    public var announce: String

    public init(id: Int, announce: String) {
        self.id = id
        self.announce = announce
    }
}

/// Where torrent-add takes the torrent from.
public enum TorrentSource: Sendable, Hashable {
    /// `metainfo`: the .torrent file's bytes, already decoded from base64.
    case metainfo([UInt8])
    /// `filename` starting with `magnet:`.
    case magnet(String)
    /// `filename` that is an http, https, ftp or sftp URL: the backend fetches it.
    case url(String)
    /// Any other `filename`: a .torrent file on the daemon's machine.
    case file(String)
}

/// A torrent-add request.
public struct TorrentAddRequest: Sendable, Hashable {
    public var source: TorrentSource
    /// An absolute path, or nil for the session's `download-dir`.
    public var downloadDirectory: String?
    /// nil: follow the session's `start-added-torrents`.
    public var paused: Bool?
    /// `cookies` to send when fetching a `.url` source, as in an HTTP `Cookie` header.
    public var cookies: String?
    /// `labels`, `peer-limit`, `bandwidthPriority`, `files-*` and `priority-*`.
    public var changes: TorrentChanges

    public init(
        source: TorrentSource, downloadDirectory: String? = nil, paused: Bool? = nil, cookies: String? = nil,
        changes: TorrentChanges = TorrentChanges()
    ) {
        self.source = source
        self.downloadDirectory = downloadDirectory
        self.paused = paused
        self.cookies = cookies
        self.changes = changes
    }
}

/// What torrent-start, -start-now, -stop, -verify, -reannounce and the queue-move methods ask for.
public enum TorrentAction: String, Sendable, Hashable, CaseIterable {
    case start = "torrent-start"
    /// Start even when the queue is full.
    case startNow = "torrent-start-now"
    case stop = "torrent-stop"
    case verify = "torrent-verify"
    case reannounce = "torrent-reannounce"
    case queueMoveTop = "queue-move-top"
    case queueMoveUp = "queue-move-up"
    case queueMoveDown = "queue-move-down"
    case queueMoveBottom = "queue-move-bottom"
}
