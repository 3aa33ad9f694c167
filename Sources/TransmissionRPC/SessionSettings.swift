/// How peer connections use encryption (`encryption`).
public enum EncryptionMode: String, Sendable, Hashable, CaseIterable {
    case required, preferred, tolerated
}

/// The session's settings as session-get reports them and session-set changes them.
///
/// Speeds are kB/s (1000 bytes), times of day minutes after midnight, `altSpeedTimeDay` a bit mask with
/// Sunday as bit 0. Defaults are Transmission's. The session id, version strings and units are not here:
/// the RPC layer adds them itself.
public struct SessionSettings: Sendable, Hashable {
    public var downloadDirectory: String
    /// Where the daemon keeps its state; read-only over RPC.
    public var configDirectory: String
    public var incompleteDirectory: String = ""
    public var incompleteDirectoryEnabled = false
    public var renamePartialFiles = true
    public var startAddedTorrents = true
    public var trashOriginalTorrentFiles = false

    public var speedLimitDown = 100
    public var speedLimitDownEnabled = false
    public var speedLimitUp = 100
    public var speedLimitUpEnabled = false
    public var altSpeedDown = 50
    public var altSpeedUp = 50
    public var altSpeedEnabled = false
    public var altSpeedTimeBegin = 540
    public var altSpeedTimeEnd = 1020
    public var altSpeedTimeDay = 127
    public var altSpeedTimeEnabled = false

    public var peerPort = 51413
    public var peerPortRandomOnStart = false
    public var portForwardingEnabled = true
    public var peerLimitGlobal = 200
    public var peerLimitPerTorrent = 50
    public var dhtEnabled = true
    public var pexEnabled = true
    public var lpdEnabled = false
    public var utpEnabled = true
    public var encryption = EncryptionMode.preferred

    public var downloadQueueEnabled = true
    public var downloadQueueSize = 5
    public var seedQueueEnabled = false
    public var seedQueueSize = 10
    public var queueStalledEnabled = true
    public var queueStalledMinutes = 30

    public var seedRatioLimit = 2.0
    public var seedRatioLimited = false
    public var idleSeedingLimit = 30
    public var idleSeedingLimitEnabled = false

    public var cacheSizeMB = 4
    public var blocklistEnabled = false
    public var blocklistURL = "http://www.example.com/blocklist"
    /// Rules in the blocklist; read-only over RPC.
    public var blocklistSize = 0
    /// Announce URLs added to public torrents: one per line, a blank line between tiers.
    public var defaultTrackers = ""

    public var scriptTorrentAddedEnabled = false
    public var scriptTorrentAddedFilename = ""
    public var scriptTorrentDoneEnabled = false
    public var scriptTorrentDoneFilename = ""
    public var scriptTorrentDoneSeedingEnabled = false
    public var scriptTorrentDoneSeedingFilename = ""

    public init(downloadDirectory: String, configDirectory: String) {
        self.downloadDirectory = downloadDirectory
        self.configDirectory = configDirectory
    }
}

/// The settings a session-set request changes, already type-checked.
public struct SessionChanges: Sendable, Hashable {
    /// The keys the request set.
    public private(set) var keys: Set<SessionSettingKey> = []
    /// Holds the new values under `keys`; everything else in it is a placeholder.
    private var values = SessionSettings(downloadDirectory: "", configDirectory: "")

    public init() {}

    /// Sets `key` from a request's JSON value, or throws the RPC error for a value of the wrong type.
    public mutating func set(_ key: SessionSettingKey, to value: JSONValue) throws(RPCFailure) {
        try key.assign(value, to: &values)
        keys.insert(key)
    }

    /// `settings` with these changes made.
    public func applied(to settings: SessionSettings) -> SessionSettings {
        var result = settings
        for key in keys { key.copy(from: values, to: &result) }
        return result
    }
}

/// Upload and download totals over some span (`current-stats`, `cumulative-stats`).
public struct TransferTotals: Sendable, Hashable {
    public var uploadedBytes = 0
    public var downloadedBytes = 0
    public var filesAdded = 0
    /// Times the daemon has started (1 for `current-stats`).
    public var sessionCount = 0
    public var secondsActive = 0

    public init() {}

    var json: JSONValue {
        .object([
            "uploadedBytes": .integer(uploadedBytes), "downloadedBytes": .integer(downloadedBytes),
            "filesAdded": .integer(filesAdded), "sessionCount": .integer(sessionCount),
            "secondsActive": .integer(secondsActive),
        ])
    }
}

/// What session-stats reports.
public struct SessionStatistics: Sendable, Hashable {
    public var activeTorrentCount = 0
    public var pausedTorrentCount = 0
    public var torrentCount = 0
    /// Bytes per second over all torrents.
    public var downloadSpeed = 0
    public var uploadSpeed = 0
    /// Since this daemon started.
    public var current = TransferTotals()
    /// Over all sessions.
    public var cumulative = TransferTotals()

    public init() {}

    /// session-stats' reply arguments.
    var arguments: [String: JSONValue] {
        [
            "activeTorrentCount": .integer(activeTorrentCount),
            "pausedTorrentCount": .integer(pausedTorrentCount),
            "torrentCount": .integer(torrentCount), "downloadSpeed": .integer(downloadSpeed),
            "uploadSpeed": .integer(uploadSpeed), "current-stats": current.json,
            "cumulative-stats": cumulative.json,
        ]
    }
}
