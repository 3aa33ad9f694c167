/// A torrent's settings and history as the state folder keeps them (`torrents/<infohash>.json`).
///
/// Limits, ratio and idle settings, peer limit and file choices are kept as torrent-set gave them
/// (Transmission's units: kB/s, minutes). The rate limits, peer limit and seed ratio are applied each
/// time the torrent starts in the engine, the idle limit and queue position by the daemon; labels,
/// group and bandwidth priority are reported back to clients only.
struct StoredTorrent: Codable, Sendable, Hashable {
    /// Where the files go (Transmission's `downloadDir`).
    var downloadDirectory: String
    /// Where the files are until complete, when the session's incomplete folder was on at its add
    /// (nil: in `downloadDirectory`). Cleared once the engine has moved them.
    var incompleteDirectory: String?
    var labels: [String] = []
    var paused = false
    /// Unix seconds.
    var addedDate: Int
    /// Breaks ties between torrents added in the same second, so restoring keeps their order.
    var order = 0
    /// Its place in the queue, 0 first (`TorrentQueue`); nil in state kept before queues existed.
    var queuePosition: Int?
    var doneDate = 0
    var activityDate = 0
    /// Payload bytes over every run before the current one.
    var uploadedEver: Int64 = 0
    var downloadedEver: Int64 = 0
    var secondsDownloading = 0
    var secondsSeeding = 0

    var downloadLimit = 100
    var downloadLimited = false
    var uploadLimit = 100
    var uploadLimited = false
    var honorsSessionLimits = true
    var peerLimit = 50
    var bandwidthPriority = 0
    var seedRatioLimit = 2.0
    /// `RatioLimitMode`'s raw value.
    var seedRatioMode = 0
    var seedIdleLimit = 30
    /// `IdleLimitMode`'s raw value.
    var seedIdleMode = 0
    /// Indices of files the client asked not to download.
    var unwantedFiles: [Int] = []
    /// `Priority` raw values by file index, for files not at normal priority.
    var filePriorities: [Int: Int] = [:]
    var group = ""
    /// The trackers once a client edited them (nil: the torrent's own).
    var announceList: AnnounceList?
    /// Its seed ratio or idle limit stopped it (Transmission's "finished"): it stays stopped, across
    /// restarts too, until a client starts it (nil: not stopped so).
    var seedLimitReached: Bool?
    /// torrent-rename-path's renames, in order (nil: none). Only the last may be unfinished on disk
    /// after a kill: each is kept before its rename is made.
    var renames: [PathRename]?

    init(downloadDirectory: String, addedDate: Int) {
        self.downloadDirectory = downloadDirectory
        self.addedDate = addedDate
    }

    /// Its numbers held within what a daemon can reach (dates before the year 10000, counters below
    /// 2⁶⁰, positions below 2³¹): read from a damaged or edited state file, a number near the largest
    /// integer overflowed the first addition made to it and stopped the daemon at every start.
    func bounded() -> StoredTorrent {
        var bounded = self
        bounded.addedDate = Self.clamp(addedDate, to: Self.dates)
        bounded.doneDate = Self.clamp(doneDate, to: Self.dates)
        bounded.activityDate = Self.clamp(activityDate, to: Self.dates)
        bounded.order = Self.clamp(order, to: Self.positions)
        bounded.queuePosition = queuePosition.map { Self.clamp($0, to: Self.positions) }
        bounded.uploadedEver = Int64(Self.clamp(Int(uploadedEver), to: Self.counters))
        bounded.downloadedEver = Int64(Self.clamp(Int(downloadedEver), to: Self.counters))
        bounded.secondsDownloading = Self.clamp(secondsDownloading, to: Self.counters)
        bounded.secondsSeeding = Self.clamp(secondsSeeding, to: Self.counters)
        return bounded
    }

    /// Unix seconds up to the end of the year 9999.
    static let dates = 0...253_402_300_799
    static let positions = 0...Int(Int32.max)
    static let counters = 0...(1 << 60)

    static func clamp(_ value: Int, to range: ClosedRange<Int>) -> Int {
        min(max(value, range.lowerBound), range.upperBound)
    }
}

/// Transfer totals over every session of the daemon (`stats.json`), for session-stats.
struct StoredTotals: Codable, Sendable, Hashable {
    var uploadedBytes: Int64 = 0
    var downloadedBytes: Int64 = 0
    var filesAdded = 0
    var sessionCount = 0
    var secondsActive = 0

    /// Held below 2⁶⁰, as ``StoredTorrent/bounded()`` holds a torrent's.
    func bounded() -> StoredTotals {
        let counters = StoredTorrent.counters
        return StoredTotals(
            uploadedBytes: Int64(StoredTorrent.clamp(Int(uploadedBytes), to: counters)),
            downloadedBytes: Int64(StoredTorrent.clamp(Int(downloadedBytes), to: counters)),
            filesAdded: StoredTorrent.clamp(filesAdded, to: counters),
            sessionCount: StoredTorrent.clamp(sessionCount, to: counters),
            secondsActive: StoredTorrent.clamp(secondsActive, to: counters))
    }
}
