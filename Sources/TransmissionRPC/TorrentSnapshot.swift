import TorrentModel

/// What a torrent is doing (`status`, Transmission's `tr_torrent_activity`, numbered since RPC 14).
public enum TorrentStatus: Int, Sendable, Hashable, CaseIterable {
    case stopped = 0
    case checkWait = 1
    case checking = 2
    case downloadWait = 3
    case downloading = 4
    case seedWait = 5
    case seeding = 6
}

/// Which kind of problem `errorString` describes (`error`, `tr_stat_errtype`).
public enum TorrentErrorKind: Int, Sendable, Hashable, CaseIterable {
    case none = 0
    /// The tracker answered with a warning; the torrent still runs.
    case trackerWarning = 1
    /// The tracker answered with an error.
    case trackerError = 2
    /// A local problem, such as a disk error; the torrent is stopped.
    case localError = 3
}

/// One file of a torrent, in torrent order (`files` and `fileStats`, and `priorities` and `wanted`).
public struct FileSnapshot: Sendable, Hashable {
    /// The path inside the torrent, components joined with `/`, starting with the torrent's name for
    /// multi-file torrents.
    public var name: String
    public var length: Int
    public var bytesCompleted: Int
    public var wanted: Bool
    public var priority: Priority

    public init(
        name: String, length: Int, bytesCompleted: Int = 0, wanted: Bool = true, priority: Priority = .normal
    ) {
        self.name = name
        self.length = length
        self.bytesCompleted = bytesCompleted
        self.wanted = wanted
        self.priority = priority
    }
}

/// One announce URL and what it last said (`trackers` uses the first five properties, `trackerStats` all).
public struct TrackerSnapshot: Sendable, Hashable {
    /// Where an announce or scrape stands (`announceState`, `scrapeState`: `tr_tracker_state`).
    public enum State: Int, Sendable, Hashable {
        case inactive = 0
        case waiting = 1
        case queued = 2
        case active = 3
    }

    /// Unique within the torrent; what `trackerRemove` names.
    public var id: Int
    public var announce: String
    public var scrape: String
    /// The tracker's site name, such as `example` for `tracker.example.org` (4.0).
    public var sitename: String
    public var tier: Int

    public var host: String
    public var isBackup: Bool = false
    public var announceState: State = .inactive
    public var scrapeState: State = .inactive
    public var hasAnnounced: Bool = false
    public var hasScraped: Bool = false
    public var lastAnnounceStartTime: Int = 0
    public var lastAnnounceTime: Int = 0
    public var lastAnnounceSucceeded: Bool = false
    public var lastAnnounceTimedOut: Bool = false
    public var lastAnnounceResult: String = ""
    public var lastAnnouncePeerCount: Int = 0
    public var nextAnnounceTime: Int = 0
    public var lastScrapeStartTime: Int = 0
    public var lastScrapeTime: Int = 0
    public var lastScrapeSucceeded: Bool = false
    public var lastScrapeTimedOut: Bool = false
    public var lastScrapeResult: String = ""
    public var nextScrapeTime: Int = 0
    /// -1 when the tracker has not said.
    public var seederCount: Int = -1
    public var leecherCount: Int = -1
    public var downloadCount: Int = -1

    public init(
        id: Int, announce: String, scrape: String = "", sitename: String = "", tier: Int, host: String = ""
    ) {
        self.id = id
        self.announce = announce
        self.scrape = scrape
        self.sitename = sitename
        self.tier = tier
        self.host = host
    }
}

/// One connected peer (`peers`, `tr_peer_stat`).
public struct PeerSnapshot: Sendable, Hashable {
    public var address: String
    public var port: Int
    public var clientName: String = ""
    /// Transmission's one-letter flags, such as `DUEI` (downloading, uploading, encrypted, incoming).
    public var flagStr: String = ""
    /// The share of the torrent the peer has, 0...1.
    public var progress: Double = 0
    /// Bytes per second from the peer.
    public var rateToClient: Int = 0
    /// Bytes per second to the peer.
    public var rateToPeer: Int = 0
    public var clientIsChoked: Bool = true
    public var clientIsInterested: Bool = false
    public var peerIsChoked: Bool = true
    public var peerIsInterested: Bool = false
    public var isDownloadingFrom: Bool = false
    public var isUploadingTo: Bool = false
    public var isEncrypted: Bool = false
    public var isIncoming: Bool = false
    public var isUTP: Bool = false

    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }
}

/// How many of the connected peers each source found (`peersFrom`).
public struct PeerSources: Sendable, Hashable {
    public var fromCache = 0
    public var fromDht = 0
    public var fromIncoming = 0
    public var fromLpd = 0
    public var fromLtep = 0
    public var fromPex = 0
    public var fromTracker = 0

    public init() {}
}

/// Everything torrent-get can report about one torrent, as the backend sees it at one moment.
///
/// Each property is named after its RPC field (`peer-limit` is `peerLimit`). The fields and who reads them:
/// - `transmission-remote -l` (remote.cc `ListKeys`): error, errorString, eta, id, isFinished,
///   leftUntilDone, name, peersGettingFromUs, peersSendingToUs, rateDownload, rateUpload, sizeWhenDone,
///   status, uploadRatio (4.1 adds addedDate).
/// - `transmission-remote -i` (`DetailsKeys`): those and activityDate, addedDate, bandwidthPriority,
///   comment, corruptEver, creator, dateCreated, desiredAvailable, doneDate, downloadDir, downloadedEver,
///   downloadLimit, downloadLimited, group, hashString, haveUnchecked, haveValid, honorsSessionLimits,
///   isPrivate, labels, magnetLink, peersConnected, peer-limit, pieceCount, pieceSize, recheckProgress,
///   secondsDownloading, secondsSeeding, seedRatioMode, seedRatioLimit, source, startDate, totalSize,
///   uploadedEver, uploadLimit, uploadLimited, webseeds, webseedsSendingToUs; `-if` files, priorities,
///   wanted; `-ip` peers; `-it` trackerStats; `-ic` pieces.
/// - Sonarr and Radarr (TransmissionProxy): id, hashString, name, downloadDir, totalSize, leftUntilDone,
///   isFinished, eta, status, secondsDownloading, secondsSeeding, errorString, downloadedEver,
///   uploadedEver, seedRatioLimit, seedRatioMode, seedIdleLimit, seedIdleMode, file-count, labels.
/// - Flood: hashString, downloadDir, name, haveValid, addedDate, dateCreated, rateDownload, rateUpload,
///   downloadedEver, uploadedEver, eta, isPrivate, error, errorString, peersGettingFromUs,
///   peersSendingToUs, status, totalSize, trackers, labels; files and fileStats; peers; trackerStats.
/// - The transmission-rpc Python library asks for every field of its rpc-version and needs `id`.
/// - The web client: nearly all of the above, plus percentDone, metadataPercentComplete, queuePosition,
///   isStalled, peersFrom, primary-mime-type, percentComplete, editDate, manualAnnounceTime, etaIdle.
///
/// Times are Unix seconds, 0 for never. Sizes are bytes, rates bytes per second.
public struct TorrentSnapshot: Sendable, Hashable {
    public var id: Int
    public var hash: InfoHash
    public var name: String
    public var status: TorrentStatus = .stopped
    public var error: TorrentErrorKind = .none
    public var errorString: String = ""

    // Sizes and progress.
    public var totalSize: Int = 0
    /// Bytes of the wanted files.
    public var sizeWhenDone: Int = 0
    public var leftUntilDone: Int = 0
    /// Verified bytes.
    public var haveValid: Int = 0
    /// Downloaded but not yet verified bytes.
    public var haveUnchecked: Int = 0
    /// Bytes still wanted that connected peers have.
    public var desiredAvailable: Int = 0
    /// Share of the wanted bytes we have, 0...1.
    public var percentDone: Double = 0
    /// Share of all bytes we have, 0...1.
    public var percentComplete: Double = 0
    /// Share of the info dictionary fetched for a magnet link, 0...1.
    public var metadataPercentComplete: Double = 1
    /// Share verified while checking, 0...1.
    public var recheckProgress: Double = 0
    /// Finished downloading and reached its seed limit.
    public var isFinished: Bool = false
    /// Has not moved data for the session's `queue-stalled-minutes`.
    public var isStalled: Bool = false

    // Transfer.
    public var rateDownload: Int = 0
    public var rateUpload: Int = 0
    public var downloadedEver: Int = 0
    public var uploadedEver: Int = 0
    /// Bytes discarded because their piece failed its hash check.
    public var corruptEver: Int = 0
    /// -1: not applicable (nothing downloaded yet); -2: infinite.
    public var uploadRatio: Double = -1
    /// Seconds to completion; -1: not available, -2: unknown.
    public var eta: Int = -1
    /// Seconds until the idle seed limit stops the torrent; -1 when none applies.
    public var etaIdle: Int = -1

    // Peers.
    public var peersConnected: Int = 0
    public var peersGettingFromUs: Int = 0
    public var peersSendingToUs: Int = 0
    public var webseedsSendingToUs: Int = 0
    public var peersFrom = PeerSources()
    public var peers: [PeerSnapshot] = []
    /// `peer-limit` and `maxConnectedPeers`.
    public var peerLimit: Int = 50

    // Dates, Unix seconds.
    public var addedDate: Int = 0
    public var doneDate: Int = 0
    public var startDate: Int = 0
    public var activityDate: Int = 0
    public var editDate: Int = 0
    public var manualAnnounceTime: Int = 0
    /// From the metainfo's `creation date`.
    public var dateCreated: Int = 0
    public var secondsDownloading: Int = 0
    public var secondsSeeding: Int = 0

    // Metainfo.
    public var comment: String = ""
    public var creator: String = ""
    public var source: String = ""
    public var isPrivate: Bool = false
    public var magnetLink: String = ""
    /// Path of the .torrent file the daemon keeps.
    public var torrentFile: String = ""
    public var pieceCount: Int = 0
    public var pieceSize: Int = 0
    /// The have-bitfield, most significant bit first, `pieceCount` bits; sent base64-encoded.
    public var pieces: [UInt8] = []
    public var primaryMimeType: String = "application/octet-stream"
    public var files: [FileSnapshot] = []
    public var trackers: [TrackerSnapshot] = []
    public var webseeds: [String] = []

    // Settings.
    public var downloadDir: String = ""
    public var labels: [String] = []
    public var group: String = ""
    public var bandwidthPriority: Priority = .normal
    public var queuePosition: Int = 0
    public var downloadLimit: Int = 100
    public var downloadLimited: Bool = false
    public var uploadLimit: Int = 100
    public var uploadLimited: Bool = false
    public var honorsSessionLimits: Bool = true
    public var seedRatioLimit: Double = 2
    public var seedRatioMode: RatioLimitMode = .global
    public var seedIdleLimit: Int = 30
    public var seedIdleMode: IdleLimitMode = .global

    public init(id: Int, hash: InfoHash, name: String) {
        self.id = id
        self.hash = hash
        self.name = name
    }

    /// The announce list as `trackerList` writes it: one URL per line, a blank line between tiers.
    public var trackerList: String {
        var text = ""
        var previousTier: Int?
        for tracker in trackers {
            if let previousTier, previousTier != tracker.tier { text += "\n" }
            text += tracker.announce + "\n"
            previousTier = tracker.tier
        }
        return text
    }
}

/// The id, name and hash that torrent-add reports, and torrent-rename-path's torrent.
public struct TorrentIdentity: Sendable, Hashable {
    public var id: Int
    public var name: String
    public var hash: InfoHash

    public init(id: Int, name: String, hash: InfoHash) {
        self.id = id
        self.name = name
        self.hash = hash
    }
}
