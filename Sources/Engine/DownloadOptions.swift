import Hashing
import Storage
import TorrentModel
import URing

/// How a download is set up.
public struct DownloadOptions: Sendable {
    /// Where the torrent's files go (created if missing).
    public var downloadDirectory: String
    /// Peers to connect to, besides those the trackers name.
    public var peers: [SocketAddress]
    /// The folder that keeps resume data as `<infohash>.resume` (``resumeFile(in:infoHash:)``); nil:
    /// beside the files, as `<download directory>/.<infohash>.potluck-resume`. A folder rather than each
    /// torrent's path: a daemon's torrents share one string instead of keeping 200 bytes each.
    public var resumeFolder: String?
    /// Where the files go once every wanted piece is verified, when `downloadDirectory` is an
    /// incomplete folder (nil: they stay). See `Engine.move`.
    public var completedDirectory: String?
    /// Memory for pieces being assembled, hashed and written (at least 8 pieces). It caps the pieces
    /// in progress. 32 MiB holds 4 peers' full request queues (8 MiB each), about a quarter of a
    /// second of data at 1 Gbit/s. 1 GiB from 4 loopback seeders (2026-12-05, 13 and 16 runs, 64
    /// receive buffers): 2.66 s at 32 MiB against 2.53 s at 64 MiB, within the runs' spread
    /// (2.1-3.1 s), peak RssAnon 35-40 against 58-84 MiB. 256 MiB was slower than 64 (1.9-2.1 s
    /// against 1.5-1.7 s, 2026-12-02).
    public var pieceMemoryBytes = 32 << 20
    /// Connections at once.
    public var maximumPeers = 64
    /// Seconds between periodic resume-data saves.
    public var resumeSaveIntervalSeconds = 30
    /// Seed for the picker's tie-breaks (a fixed one makes runs replayable).
    public var seed: UInt64 = UInt64(UInt32.random(in: 0...UInt32.max))
    /// Optional io_uring features to leave unused.
    public var disabledRingFeatures: RingFeatures = []
    /// Where to accept incoming connections (nil: outgoing only). Port 0 picks a free port.
    public var listenAddress: SocketAddress?
    /// Keep running and uploading once every piece is verified, until stopped.
    public var seedWhenComplete = false
    /// Peers uploaded to at once besides the optimistic one (the choker's regular slots; BEP 3's
    /// mainline used 4). A seed serving many leechers on a fast link may want more.
    public var uploadSlots = 4
    /// Upload buffers (128 KiB each): single-block reads, when the piece cache is full of pieces in use.
    public var uploadBufferCount = 64
    /// Memory for whole pieces read for uploading, shared by all peers (0: read block by block).
    public var uploadCacheBytes = 64 << 20
    /// Payload bytes per second sent to all peers together; 0 for no limit.
    public var maximumUploadRateBytesPerSecond = 0
    /// Payload bytes per second received from all peers together; 0 for no limit.
    public var maximumDownloadRateBytesPerSecond = 0
    /// With `seedWhenComplete`: stop once the bytes uploaded reach this multiple of the torrent's size.
    public var seedRatioLimit: Double?
    /// With `seedWhenComplete`: stop after seeding this long.
    public var seedTimeLimitSeconds: Int?
    /// Incoming connections for this torrent from an `IncomingRouter` that listens for several torrents
    /// (instead of, or besides, `listenAddress`).
    public var incomingInbox: IncomingInbox?
    /// Limits shared with other sessions (several torrents under one limit); this torrent's own
    /// `maximumUploadRateBytesPerSecond` / `maximumDownloadRateBytesPerSecond` apply within them.
    public var sharedUploadLimiter: RateLimiter?
    public var sharedDownloadLimiter: RateLimiter?
    /// Whether `sharedUploadLimiter` and `sharedDownloadLimiter` apply; without, only this torrent's
    /// own rates do (Transmission's `honorsSessionLimits`).
    public var honorsSharedRates = true
    /// Connections at once across every session sharing it (each link takes one), besides this
    /// torrent's own `maximumPeers`.
    public var sharedConnectionBudget: ConnectionBudget?
    /// Reserve each file's full size before its first write instead of leaving it sparse: a full disk
    /// is found before any piece is downloaded for that file.
    public var preallocateFiles = false
    /// Write verified pieces with `O_DIRECT` where they are block-aligned (see
    /// `PieceStore.Options.directWrites`): no second copy of the data in the page cache.
    public var directWrites = true
    /// Announce to the torrent's trackers (BEP 3, 12, 15) and connect to the peers they name.
    public var useTrackers = true
    /// A PEM file of CAs trusted for HTTPS trackers besides the system store.
    public var trackerCAFile: String?
    /// Announce tiers to use instead of the torrent's own (a front end's edited list; BEP 12 order);
    /// nil: the metainfo's, or a magnet link's.
    public var trackers: [[String]]?
    /// The port trackers are told, when another component listens for this torrent (an
    /// `IncomingRouter` serving several torrents on one port); default: `listenAddress`'s.
    public var announcedPort: UInt16?
    /// Where the announcer reports each tracker's outcome; set by the engine.
    var trackerBoard: TrackerStatusBoard?
    /// The engine's DHT (nil: none); set by the engine.
    public var dht: DHTHandle?
    /// The engine's Local Service Discovery (nil: none); set by the engine.
    public var localDiscovery: LocalDiscoveryHandle?
    /// Trade peers with peers (BEP 11 `ut_pex`); never for a private torrent.
    public var usePeerExchange = true
    /// Fetch from the web seeds the torrent lists (BEP 19 `url-list`).
    public var useTorrentWebSeeds = true
    /// Web seed URLs to fetch from besides the torrent's own (used even without `useTorrentWebSeeds`).
    public var extraWebSeeds: [String] = []
    /// A PEM file of CAs trusted for `https` web seeds besides the system store.
    public var webSeedCAFile: String?

    /// Per file of the torrent (`Metainfo.files`, by index, padding included), its path under the
    /// download folder where a front end renamed files or folders; nil: the metainfo's paths. The
    /// front end checks them as the metainfo's are checked (see `FileLayout.renamed(to:)`).
    public var filePaths: [[String]]?
    /// Per file of the torrent (`Metainfo.files`, by index), how much it is wanted; nil: as the resume
    /// data remembers, else every file at normal priority. See `FilePriorities`.
    public var filePriorities: [FilePriority]?
    /// Ask for pieces in index order (for playing while downloading) instead of rarest first.
    public var sequential = false
    /// Streaming: this many bytes from the first missing wanted piece on go before everything else,
    /// the rest rarest first; the window moves on as pieces are verified (0: none).
    public var streamWindowBytes = 0
    /// A seed without peers for this long, with nothing only a session can do, leaves its reactor to
    /// rest (see `DownloadSession+Rest.swift`); nil: never. Set by the engine, which can wake it.
    var restAfterIdleSeconds: Int?

    public init(downloadDirectory: String, peers: [SocketAddress]) {
        self.downloadDirectory = downloadDirectory
        self.peers = peers
    }

    /// Where the resume data of the torrent with `infoHash` lives.
    public func resumeDataPath(infoHash: InfoHash) -> String {
        if let resumeFolder { return Self.resumeFile(in: resumeFolder, infoHash: infoHash) }
        return downloadDirectory + "/.\(infoHash.hex).potluck-resume"
    }

    /// The resume data of the torrent with `infoHash` in a `resumeFolder`.
    public static func resumeFile(in folder: String, infoHash: InfoHash) -> String {
        folder + "/" + infoHash.hex + ".resume"
    }
}

/// A snapshot for progress display.
public struct DownloadStatus: Sendable {
    public var phase: Phase
    public var verifiedPieces: Int
    public var pieceCount: Int
    public var verifiedBytes: Int64
    public var totalBytes: Int64
    public var downloadedPayloadBytes: Int64
    public var downloadRateBytesPerSecond: Double
    public var uploadRateBytesPerSecond: Double
    public var connectedPeers: Int
    public var knownPeers: Int
    /// Bytes checked by a recheck, while `phase == .checking`.
    public var checkedBytes: Int64
    public var uploadedPayloadBytes: Int64
    /// Where incoming connections are accepted, once listening.
    public var listenAddress: SocketAddress?
    /// The last tracker outcome for the progress line ("tracker: ok 3 peers"), nil without trackers.
    public var trackerState: String? = nil
    /// Bytes of the pieces wanted (the selected files' pieces; every piece without a selection), and
    /// how many of them are verified: the progress of a download that skips files.
    public var wantedBytes: Int64 = 0
    public var verifiedWantedBytes: Int64 = 0
    /// Which pieces are verified, while some are missing (nil once all are: no copy of a full set).
    /// For per-file progress and the pieces a front end draws.
    public var verified: PieceSet? = nil

    public enum Phase: Sendable {
        case checking
        case downloading
        case seeding
    }
}

/// How a download ended.
public enum DownloadOutcome: Sendable, Equatable {
    /// Every piece is verified and on disk.
    case completed
    /// Stopped on request; resume data is saved.
    case interrupted
}

/// Why a download stopped with an error.
public enum DownloadError: Error, CustomStringConvertible {
    case ringUnavailable(RingUnavailableError)
    case storage(StorageError)
    case io(IOError)
    case listen(SyscallError)
    case threads(HashPoolError)
    /// The reactor already hosts as many torrents as its tokens can name.
    case reactorFull
    /// A magnet link's metadata could not be had or used.
    case metadata(String)

    public var description: String {
        switch self {
        case .reactorFull: "the reactor hosts \(Reactor.maximumTenants) torrents already"
        case .ringUnavailable(let error): error.description
        case .listen(let error): "cannot listen for peers: \(error)"
        case .storage(let error): "storage: \(error)"
        case .io(let error): "\(error)"
        case .threads(let error): "\(error)"
        case .metadata(let reason): "metadata: \(reason)"
        }
    }

    /// The process ran out of something every torrent in it shares (descriptors, threads, memory):
    /// other torrents in the process will fail the same way.
    public var exhaustsProcessResources: Bool {
        let exhausted: Set<Errno> = [.tooManyOpenFiles, .tooManyOpenFilesInSystem, .noMemory, .tryAgain]
        switch self {
        case .ringUnavailable(let error): return exhausted.contains(error.errno)
        case .listen(let error): return exhausted.contains(error.errno)
        case .io(let error): return exhausted.contains(error.errno)
        case .threads: return true
        case .reactorFull, .metadata: return false
        case .storage(let error):
            guard case .system(let errno) = error.reason else { return false }
            return exhausted.contains(errno)
        }
    }
}
