import DHT
import Dispatch
import Glibc
import Hashing
import Metainfo
import Synchronization
import TorrentModel
import URing

/// How an engine is set up: the process-wide parts every torrent shares.
public struct EngineOptions: Sendable {
    /// Reactor threads (default: one per core). Each torrent lives on one; see the README's
    /// "one reactor per core" for why.
    public var reactors = HashPool.coreCount
    /// Optional io_uring features to leave unused.
    public var disabledRingFeatures: RingFeatures = []
    /// One port for every torrent's incoming peers (nil: outgoing connections only).
    public var listenAddress: SocketAddress?
    /// Connections at once across all torrents.
    public var maximumConnections = 500
    /// Payload bytes per second for all torrents together; 0 for no limit.
    public var maximumUploadRateBytesPerSecond = 0
    public var maximumDownloadRateBytesPerSecond = 0
    /// Where the engine's log lines go (any thread).
    public var log: @Sendable (String) -> Void = { _ in }
    /// Called on the moving thread once a torrent's files are all in their new folder, before the
    /// move's journal is removed: a front end that keeps each torrent's folder saves it here, so that
    /// no crash finds the files gone from the folder it remembers.
    public var onMoved: @Sendable (TorrentID, String) -> Void = { _, _ in }
    /// Start each torrent's log lines with its name (off for a front end with one torrent).
    public var namesTorrentsInLog = true
    /// The DHT (nil: none). Its socket takes the listening port when it asks for port 0.
    public var dht: DHTOptions?
    /// Local Service Discovery (BEP 14): find peers on the LAN by multicast, and be found.
    public var localDiscovery = false
    /// The IPv4 address whose interface local discovery joins and announces on (default: the
    /// listening address; a wildcard one: the interface the routing table picks).
    public var localDiscoveryAddress: SocketAddress?
    /// A seed with no peer for this long, and nothing that needs a running session (web seeds, a port
    /// of its own, a seed time limit, a tracker exchange under way), rests: its session leaves the
    /// reactor and a small stand-in wakes it when a peer connects, a command needs it or
    /// its trackers' next announce is due. nil: torrents never rest.
    public var restIdleSeedsAfterSeconds: Int? = 30
    /// Accept incoming peers from the start. A front end that first adds the torrents it kept sets
    /// false and calls `Engine.startRoutingPeers()` once they are in: a peer arriving meanwhile waits in
    /// the listen backlog instead of being turned away for a torrent not added yet.
    public var routesPeersAtStart = true

    public init() {}
}

/// A torrent's handle in an engine.
public struct TorrentID: Hashable, Sendable, CustomStringConvertible {
    public let value: Int
    public var description: String { "#\(value)" }
}

/// What a torrent is doing, as the engine last heard.
public enum TorrentActivity: Sendable, Equatable {
    /// Placed on a reactor, not yet reporting.
    case starting
    /// A magnet link's torrent, fetching its info dictionary from peers.
    case fetchingMetadata
    case checking
    case downloading
    case seeding
    /// Stopped on request (`pause`); `resume` starts it again.
    case paused
    /// Complete, and not seeding.
    case finished
    /// Stopped by an error.
    case failed(String)
    /// Its files are moving to another folder (`Engine.move`, or on completion out of an incomplete
    /// folder); it starts again there if it was running.
    case moving
}

/// A torrent as the engine sees it now.
public struct TorrentSnapshot: Sendable {
    public let id: TorrentID
    public let name: String
    public let infoHash: InfoHash
    public var activity: TorrentActivity
    /// The torrent's latest status report (nil before its first).
    public var status: DownloadStatus?
    /// How many status reports have arrived: a front end draws a line when this moves.
    public var statusReports: Int
    /// How its last run ended (nil while it runs, and before it first ends).
    public var ended: Result<DownloadOutcome, DownloadError>?
    /// Whether it is placed on a reactor and has not ended.
    public var isLive: Bool
    /// Live, seeding, but resting off its reactor until a peer or a command needs it (no session,
    /// no rates, no peers; see `EngineOptions.restIdleSeedsAfterSeconds`).
    public var isResting: Bool
    /// Its own limits as last set; a paused torrent starts again with them.
    public var limits: TorrentLimits
    /// While a magnet link's metadata is being fetched: how that goes.
    public var metadataFetch: MetadataFetchStatus?
    /// Whether its metainfo is known (always, except for a magnet link before its metadata arrives).
    public var hasMetadata: Bool
    /// When a magnet link's metadata arrived (nil for a torrent added with its metainfo).
    public var metadataReceivedAt: ContinuousClock.Instant?
    /// The folder its files are in now (a move changes it once the files are there).
    public var downloadDirectory: String

    /// Why it stopped, when an error stopped it.
    public var failure: DownloadError? {
        if case .failure(let error) = ended { return error }
        return nil
    }
}

/// Totals over every torrent of an engine.
public struct EngineSummary: Sendable {
    public var torrents = 0
    /// Placed on a reactor and not ended.
    public var live = 0
    public var failed = 0
    /// One failure in full (the first met), for a report that does not repeat thousands alike.
    public var firstFailure: String?
    /// A failure was the process running out of what every torrent shares.
    public var exhaustedProcessResources = false
    public var uploadedPayloadBytes: Int64 = 0
    public var downloadedPayloadBytes: Int64 = 0
    public var uploadRateBytesPerSecond = 0.0
    public var downloadRateBytesPerSecond = 0.0
    public var connectedPeers = 0
    /// Live seeds resting off their reactors.
    public var resting = 0
}

/// What happens to torrents, in order, for a front end that waits on them.
public enum EngineEvent: Sendable {
    case added(TorrentID)
    /// The torrent left its reactor: finished, paused, removed or failed (see its activity).
    case ended(TorrentID, DownloadOutcome?, DownloadError?)
    case removed(TorrentID)
}

public enum EngineError: Error, CustomStringConvertible {
    case duplicate(TorrentID)
    case unknownTorrent(TorrentID)
    case shuttingDown
    case startFailed(DownloadError)
    case threads(SyscallError)
    case unsupportedMagnet(String)
    /// What was asked needs the torrent's files, and its magnet link's metadata has not arrived.
    case metadataNotYetKnown(TorrentID)
    /// Its files are being moved; another move waits until this one is done.
    case moving(TorrentID)
    /// What was asked needs the torrent stopped (its files closed) first.
    case running(TorrentID)
    /// File paths that are not one valid relative path per file of the torrent.
    case invalidFilePaths(TorrentID)

    public var description: String {
        switch self {
        case .duplicate(let id): "the torrent is already added (\(id))"
        case .unknownTorrent(let id): "no torrent \(id)"
        case .shuttingDown: "the engine is shutting down"
        case .startFailed(let error): "\(error)"
        case .unsupportedMagnet(let reason): "cannot download this magnet link: \(reason)"
        case .metadataNotYetKnown(let id): "the files of \(id) are not known until its metadata arrives"
        case .moving(let id): "the files of \(id) are being moved; try again once they are"
        case .running(let id): "\(id) must be stopped first"
        case .invalidFilePaths(let id): "the file paths given for \(id) are not one valid path per file"
        case .threads(let error):
            "cannot start a reactor thread: \(error.errno); the thread limit is reached (`ulimit -u`, a pids "
                + "cgroup, kernel.threads-max)"
        }
    }
}

/// Which engine torrent, and which of its runs, a session on a reactor is.
struct HostKey: Hashable, Sendable {
    let id: TorrentID
    let run: Int
}
