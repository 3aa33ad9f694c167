import Buffers
import Glibc
import Hashing
import Metainfo
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

/// How a download is set up.
public struct DownloadOptions: Sendable {
    /// Where the torrent's files go (created if missing).
    public var downloadDirectory: String
    /// Peers to connect to, besides those the trackers name.
    public var peers: [SocketAddress]
    /// Where resume data lives; default `<download directory>/.<infohash>.potluck-resume`.
    public var resumePath: String?
    /// Memory for pieces being assembled, hashed and written (at least 8 pieces). It caps the pieces
    /// in progress; 64 MiB still lets 4 loopback peers fill their request queues, and measured faster
    /// than 256 MiB (1 GiB from 4 seeders: 1.5-1.7 s against 1.9-2.1 s, a third of the memory).
    public var pieceMemoryBytes = 64 << 20
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
    /// The port trackers are told, when another component listens for this torrent (an
    /// `IncomingRouter` serving several torrents on one port); default: `listenAddress`'s.
    public var announcedPort: UInt16?

    public init(downloadDirectory: String, peers: [SocketAddress]) {
        self.downloadDirectory = downloadDirectory
        self.peers = peers
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

    public var description: String {
        switch self {
        case .reactorFull: "the reactor hosts \(Reactor.maximumTenants) torrents already"
        case .ringUnavailable(let error): error.description
        case .listen(let error): "cannot listen for peers: \(error)"
        case .storage(let error): "storage: \(error)"
        case .io(let error): "\(error)"
        case .threads(let error): "\(error)"
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
        case .reactorFull: return false
        case .storage(let error):
            guard case .system(let errno) = error.reason else { return false }
            return exhausted.contains(errno)
        }
    }
}

/// One torrent, hosted by a `Reactor` (many torrents share one): io_uring for sockets and files, the
/// reactor's hashing workers for verification, and the pure protocol cores for every decision.
///
/// The data path: a receive lands in a provided buffer; the peer wire decoder hands out each block's
/// bytes in place, and they are copied once into the piece's buffer from a fixed pool; a complete piece
/// is hashed in that buffer on the pool, written from it through the ring, and only then announced with
/// HAVE. Nothing on the reactor blocks; no timer gates the data path (requests are topped up on every
/// block).
///
/// The torrent moves through stages the reactor drives: checking the data on disk, running
/// (downloading, then seeding), finishing (writes land, resume data is saved, queued sends drain,
/// trackers are told), closing (every operation on the ring for it completes), and gone.
///
/// Invariants: a piece has a buffer from the moment its first block arrives until it is written (or
/// fails its hash); a buffer is never released while lent to the hasher or the store; every verified
/// piece is in `verified` only after it was written; the torrent leaves its reactor only once nothing
/// of it is in flight on the ring or the hashers (their memory is its own).
public final class DownloadSession {
    static var peerOwner: UInt8 { Reactor.peerOwner }
    static var listenerOwner: UInt8 { Reactor.listenerOwner }
    /// The largest block a peer may ask for (`PieceGeometry.maximumRequestLength`): one upload buffer.
    static let uploadBufferBytes = Int(PieceGeometry.maximumRequestLength)
    static var receiveBufferBytes: Int { Reactor.receiveBufferBytes }
    /// Blocks read or queued unsent per link: enough to fill a fast link, bounded for a slow reader.
    static let maximumQueuedPayloadsPerLink = 64

    public let metainfo: Metainfo
    public let options: DownloadOptions
    private let geometry: PieceGeometry
    /// Pieces that end in padding, with the blocks before it: only those are asked for.
    private let dataBlockCounts: [PieceIndex: Int]
    private let localPeerID: PeerID

    // Set when a reactor takes the torrent.
    private unowned(unsafe) var reactor: Reactor!
    private var tenant: UInt16 = 0
    private var ring: Ring { reactor.ring }
    private var hashers: HashPool { reactor.hashers }
    private var providedBuffers: ProvidedBufferRing? { reactor.providedBuffers }
    private var store: PieceStore!
    /// Piece memory, made at first use and given back once the torrent seeds (see `restIfIdle`).
    private var pieceBufferStorage: BufferPool?
    private var pieceBuffers: BufferPool {
        if let pieceBufferStorage { return pieceBufferStorage }
        // No more slots than pieces: a torrent of three pieces never holds more than three.
        let slotCount = max(
            1, min(metainfo.pieceCount, max(8, options.pieceMemoryBytes / metainfo.pieceLength)))
        let pool = BufferPool(slotSizeBytes: metainfo.pieceLength, slotCount: slotCount)
        pieceBufferStorage = pool
        return pool
    }

    /// Where the torrent is in its life (the rules are pure: `TorrentLifecycle`).
    private var lifecycle: TorrentLifecycle
    /// Whether trading has begun (the pipeline built, the listener armed, trackers started).
    private var trading = false
    /// When the reactor is to tick this torrent next (see `Reactor.schedule`).
    private(set) var tickDeadline: UInt64 = 0
    /// The torrent's own hash jobs (a check's are its own to count).
    private var hashesInFlight = 0
    /// The check of the data on disk, until it has nothing in flight.
    private var recheck: Recheck?
    /// Called on the reactor about once a second (every 250 ms while checking).
    var statusHandler: ((DownloadStatus) -> Void)?
    /// Called on the reactor once, when the torrent has left it.
    var endHandler: ((Result<DownloadOutcome, DownloadError>) -> Void)?
    /// The engine's name for this session, by which commands find it on its reactor.
    var hostKey: HostKey?
    private var lastStatus: UInt64 = 0
    /// Bytes checked so far while checking.
    private var checkedBytes: Int64 = 0

    private var pipeline: RequestPipeline
    private var verified: PieceSet
    private var links: [PeerLink?] = []
    private var linkGenerations: [UInt16] = []
    private var candidates: [PeerCandidate]
    /// Pieces being assembled or hashed or written: their buffer.
    private var assembling: [PieceIndex: BufferSlot] = [:]
    private var writing: Set<PieceIndex> = []
    private var actions: [RequestAction] = []
    private var pendingEvents: [PendingEvent] = []
    private var downloadedBytes: Int64 = 0
    private var rate = RateMeter(window: .seconds(5))
    private var failure: DownloadError?
    private var flushRequested = false
    private var flushed = false
    private var lastResumeSaveNanoseconds: UInt64 = 0
    private var droppedBlocks = 0
    private var completionSaved = false

    // Uploading.
    private var choker: Choker
    private var chokeActions: [ChokeAction] = []
    /// Upload buffers, made at the first block read and given back when the torrent rests.
    private var uploadBufferStorage: BufferPool?
    private var uploadBuffers: BufferPool {
        if let uploadBufferStorage { return uploadBufferStorage }
        let pool = BufferPool(slotSizeBytes: Self.uploadBufferBytes, slotCount: uploadLeases.count)
        uploadBufferStorage = pool
        return pool
    }
    /// The lease of each upload buffer with a read in flight, by buffer index.
    private var uploadLeases: [BufferSlot?] = []
    /// Whole pieces read for uploading, shared by all peers: made at the first request served, given
    /// back when the torrent rests (nil then, and when pieces are too large for the budget).
    private var pieceCache: PieceCache?
    /// Whether the cache is registered with the ring (then it stays: the kernel holds its pages).
    private var pieceCacheRegistered = false
    /// When the torrent last had a peer (for `restIfIdle`).
    private var lastBusy: UInt64 = 0
    private var pieceCacheRegistrationTried = false
    /// Pieces whose whole-piece read failed: served block by block.
    private var uncachedPieces: Set<PieceIndex> = []
    /// The link `serveUploads` looked at last (it serves links in turn).
    private var uploadCursor = 0
    /// The upload limit held requests back: the reactor wakes when it allows again.
    private var uploadThrottled = false
    private var uploadedBytes: Int64 = 0
    private var uploadRate = RateMeter(window: .seconds(5))
    private let uploadLimiter: RateLimiter
    private let downloadLimiter: RateLimiter
    /// Requests were held back by the download limit: top every queue up once it allows again.
    private var downloadThrottled = false
    /// When seeding began (for `seedTimeLimitSeconds`).
    private var seedingSince: UInt64?
    /// Finishing: requests are no longer served (what is queued is still sent).
    private var stopping = false
    /// Sockets taken from `options.incomingInbox`, reused.
    private var routedDescriptors: [RoutedConnection] = []
    private var listenerFD: Int32 = -1
    /// When to arm accepting again after it failed (nil: armed, or no listener).
    private var acceptRetryAt: UInt64?
    private var loggedAcceptErrors: Set<Errno> = []
    static let acceptRetryNanoseconds: UInt64 = 250_000_000
    private var boundAddress: SocketAddress?
    private var log: (String) -> Void
    /// Announces to the torrent's trackers; nil when it has none or they are turned off.
    private var trackers: TrackerAnnouncer?

    /// What a receive produced, kept until the connection has finished parsing.
    private enum PendingEvent {
        case handshake(extensionProtocol: Bool)
        case extensionHandshake([UInt8])
        case bitfield
        case haveAll
        case haveNone
        case have(PieceIndex)
        case choked
        case unchoked
        case blockComplete(BlockRange)
        /// A requested block that arrived but could not be kept (no piece buffer, or already in).
        case blockUnused(BlockRange)
        case interested
        case notInterested
        case rejected(BlockRange)
        case request(BlockRange)
    }

    /// What we tell peers in the BEP 10 handshake.
    static let extensionHandshake = ExtensionHandshake(
        clientName: "Potluck \(potluckVersion)",
        requestQueueLength: PeerConnectionOptions().maximumIncomingRequests)

    public init(metainfo: Metainfo, options: DownloadOptions, log: @escaping (String) -> Void = { _ in }) {
        self.metainfo = metainfo
        self.options = options
        self.log = log
        lifecycle = TorrentLifecycle(seedsWhenComplete: options.seedWhenComplete)
        geometry = metainfo.geometry
        dataBlockCounts = metainfo.layout.dataBlockCounts()
        localPeerID = Self.makePeerID()
        verified = PieceSet(pieceCount: metainfo.pieceCount)
        pipeline = RequestPipeline(
            geometry: metainfo.geometry, seed: options.seed, dataBlockCounts: dataBlockCounts)
        candidates = options.peers.map { PeerCandidate(address: $0) }
        var chokerConfiguration = Choker.Configuration()
        chokerConfiguration.regularUnchokeSlots = max(0, options.uploadSlots)
        choker = Choker(configuration: chokerConfiguration, seed: options.seed)
        uploadLimiter = RateLimiter(
            rateBytesPerSecond: options.maximumUploadRateBytesPerSecond, within: options.sharedUploadLimiter)
        downloadLimiter = RateLimiter(
            rateBytesPerSecond: options.maximumDownloadRateBytesPerSecond,
            within: options.sharedDownloadLimiter)
    }

    /// `-PO0001-` and twelve random bytes: the client prefix other peers and trackers recognise.
    static func makePeerID() -> PeerID {
        var bytes = Array("-PO0001-".utf8)
        for _ in 0..<12 { bytes.append(UInt8.random(in: UInt8(ascii: "0")...UInt8(ascii: "z"))) }
        return PeerID(bytes)!
    }

    private var nowNanoseconds: UInt64 { reactor.now }

    private var resumePath: String {
        options.resumePath ?? options.downloadDirectory + "/.\(metainfo.wireInfoHash.hex).potluck-resume"
    }

    // MARK: Running alone

    /// Runs this torrent alone on a reactor of its own on the calling thread, until it completes,
    /// `shouldStop` says so, or an error stops it; `status` is called about once a second.
    public func run(
        shouldStop: () -> Bool, status: (DownloadStatus) -> Void
    ) throws(DownloadError) -> DownloadOutcome {
        // However the session ends, even before it runs, routed peers are no longer held for it.
        defer { options.incomingInbox?.close() }
        var reactorOptions = ReactorOptions()
        reactorOptions.disabledRingFeatures = options.disabledRingFeatures
        let reactor = try Reactor(options: reactorOptions)
        let outcome: Result<DownloadOutcome, DownloadError> = withoutActuallyEscaping(status) { status in
            statusHandler = status
            defer { statusHandler = nil }
            reactor.host(self)
            do throws(DownloadError) {
                try reactor.run(shouldStop: shouldStop, until: { self.outcome != nil })
            } catch {
                return .failure(error)
            }
            return self.outcome!
        }
        return try outcome.get()
    }

    /// The torrent's outcome once it has left its reactor.
    var outcome: Result<DownloadOutcome, DownloadError>? {
        switch lifecycle.ending {
        case nil: nil
        case .completed: .success(.completed)
        case .interrupted: .success(.interrupted)
        case .failed: .failure(failure ?? .io(IOError(.enter, errno: .ioError)))
        }
    }

    // MARK: Driven by the reactor

    /// Whether the torrent has left its reactor (nothing of it is in flight any more).
    var hasLeftReactor: Bool { lifecycle.ending != nil }

    /// Whether pieces are being downloaded (the reactor batches completions then).
    var isDownloading: Bool { lifecycle.stage == .downloading }

    private var isTrading: Bool { lifecycle.stage == .downloading || lifecycle.stage == .seeding }

    /// Taken by `reactor` as `tenant`: sets up storage and starts checking or trading.
    func attach(to reactor: Reactor, tenant: UInt16) {
        self.reactor = reactor
        self.tenant = tenant
        options.incomingInbox?.attach(reactor.doorbell, tenant: tenant)
        let now = nowNanoseconds
        do throws(DownloadError) {
            try setUp()
            if let recheck = try restoreProgress() {
                self.recheck = recheck
                advance(.started(needsCheck: true, isComplete: false), now: now)
                var events: [RecheckEvent] = []
                recheck.start(into: &events)
                checkProgressed(events, now: now)
            } else {
                advance(.started(needsCheck: false, isComplete: verified.isComplete), now: now)
            }
        } catch {
            fail(error)
        }
        scheduleTick(now: now)
    }

    /// Asks the torrent to stop cleanly: writes land, resume data is saved, trackers are told.
    func stop() {
        let now = nowNanoseconds
        advance(.stopRequested, now: now)
        if lifecycle.stage == .checking {
            recheck?.stop()
            checkProgressed([], now: now)
        }
    }

    /// Moves the torrent along and does what its new stage means.
    private func advance(_ event: TorrentLifecycle.Event, now: UInt64) {
        guard let stage = lifecycle.handle(event, now: Instant(nanoseconds: now)) else { return }
        switch stage {
        case .idle, .checking:
            break
        case .downloading:
            startTrading(now: now)
        case .seeding:
            startTrading(now: now)
            becomeSeed(now: now)
        case .finishingWrites:
            log(
                "finishing: \(writing.count) pieces being written, \(droppedBlocks) blocks dropped for want of "
                    + "piece memory")
        case .drainingSends:
            log("finished writing (\(writing.count) pieces not written)")
            saveResumeData()
            // Requests are no longer served; what is queued is still sent.
            stopping = true
        case .stoppingTrackers(let ending):
            recheck?.stop()
            closeLinks()
            trackers?.beginShutdown(now: now, completed: ending == .completed)
            trackers?.tick(now: now)
        case .closing(let ending):
            // Complete before trading began: nothing to tell anyone, but the check's findings are kept.
            if ending == .completed && !trading { saveResumeData() }
            closeLinks()
        case .gone:
            if listenerFD >= 0 {
                Glibc.close(listenerFD)
                listenerFD = -1
            }
            options.incomingInbox?.close()
            if let outcome { endHandler?(outcome) }
        }
        reactor.touch(tenant)
    }

    private func setUp() throws(DownloadError) {
        if mkdir(options.downloadDirectory, 0o755) != 0 && errno != EEXIST {
            throw .storage(
                StorageError(.open, path: options.downloadDirectory, reason: .system(Errno(rawValue: errno))))
        }
        do {
            store = try PieceStore(
                layout: metainfo.layout, downloadDirectory: options.downloadDirectory, ring: ring,
                options: PieceStore.Options(
                    preallocate: options.preallocateFiles, directWrites: options.directWrites),
                tenant: tenant)
            // Empty files get no piece, so no write would ever create them.
            try store.createEmptyFiles()
        } catch {
            throw .storage(error)
        }
        uploadLeases = Array(repeating: nil, count: max(1, options.uploadBufferCount))
        if let listenAddress = options.listenAddress {
            do {
                listenerFD = try Socket.listenTCP(on: listenAddress)
                boundAddress = try Socket.localAddress(of: listenerFD)
            } catch {
                throw .listen(error)
            }
            log("listening on \(boundAddress.map { "\($0)" } ?? "?")")
        }
    }

    /// A completion whose token names this torrent.
    func handle(_ completion: Completion, now: UInt64) {
        if let recheck, completion.slot.owner == recheck.owner {
            var events: [RecheckEvent] = []
            recheck.handle(completion, into: &events)
            checkProgressed(events, now: now)
            return
        }
        route(completion, now: now)
    }

    /// A hash result whose token names this torrent; its slot is still lent from `pieceBuffers`.
    func hashCompleted(_ result: HashResult, now: UInt64) {
        if let slot = result.slot { pieceBuffers.reclaim(slot) }
        if let recheck, recheck.ownsHashToken(result.token) {
            var events: [RecheckEvent] = []
            recheck.handle(result, into: &events)
            checkProgressed(events, now: now)
            return
        }
        pieceHashed(result, now: now)
    }

    /// Hashes a piece buffer on the reactor's workers; the token carries the tenant for routing back.
    private func submitHash(_ slot: BufferSlot, length: Int, kind: HashJobKind, piece: PieceIndex) {
        hashesInFlight += 1
        hashers.submit(
            slot, length: length, in: pieceBuffers, kind: kind,
            token: UInt64(tenant) << 32 | UInt64(piece.value))
    }

    /// After the completions of one loop: act on what changed, and send what was queued. Each step of
    /// an ending may be done at once (nothing was being written, say), so it goes on while stages change.
    func service(now: UInt64) {
        if failure != nil { advance(.failed, now: now) }
        while true {
            let before = lifecycle.stage
            serviceStage(now: now)
            if lifecycle.stage == before { return }
        }
    }

    private func serviceStage(now: UInt64) {
        switch lifecycle.stage {
        case .idle, .checking, .gone:
            break
        case .downloading, .seeding:
            serviceTrading(now: now)
        case .finishingWrites:
            if writing.isEmpty && !flushRequested {
                flushRequested = true
                store.flush()
            }
            advance(writing.isEmpty && flushed ? .writesLanded : .tick, now: now)
        case .drainingSends:
            flushAllSends()
            let busy = links.contains { link in
                guard let link, link.connected, !link.closing else { return false }
                return link.sendInFlight || !link.connection.outbound.isEmpty
            }
            advance(busy || uploadLeases.contains(where: { $0 != nil }) ? .tick : .sendsDrained, now: now)
        case .stoppingTrackers:
            if trackers?.isFinished(now: now) ?? true {
                trackers?.close()
                advance(.trackersDone, now: now)
            }
        case .closing:
            let linksOpen = links.contains { $0 != nil }
            let checking = recheck?.hasWorkInFlight ?? false
            if !linksOpen && !checking && hashesInFlight == 0 && (store?.operationsInFlight ?? 0) == 0 {
                advance(.drained, now: now)
            }
        }
    }

    private func serviceTrading(now: UInt64) {
        if verified.isComplete && writing.isEmpty {
            advance(.allPiecesWritten, now: now)
            if lifecycle.stage == .seeding, let reason = seedLimitReached(now: now) {
                log("stopping: \(reason)")
                advance(.seedLimitReached, now: now)
            }
            guard isTrading else { return }
        }
        if let inbox = options.incomingInbox {
            inbox.take(into: &routedDescriptors)
            for routed in routedDescriptors {
                adoptIncoming(routed.fd, plaintextRead: routed.plaintextRead, now: now)
            }
            routedDescriptors.removeAll(keepingCapacity: true)
        }
        // Requests held back by the upload limit go out as tokens accrue, not on the next tick.
        if uploadThrottled && uploadLimiter.allows() {
            uploadThrottled = false
            serveUploads()
        }
        if downloadThrottled && downloadLimiter.allows() {
            downloadThrottled = false
            refillAllRequests(now: now)
        }
        flushAllSends()
        if uploadThrottled || downloadThrottled { scheduleThrottleWake(now: now) }
        if tickDeadline > now + 250_000_000 && !isAtRest { scheduleTick(now: now) }
    }

    /// The reactor's timer for this torrent.
    func tick(now: UInt64) {
        switch lifecycle.stage {
        case .downloading, .seeding:
            runningTick(now: now)
            // At rest the next tick is far off: report now, so the last word is not a stale rate.
            if now - lastStatus >= 1_000_000_000 || isAtRest { reportStatus(now: now) }
            if now - lastResumeSaveNanoseconds >= UInt64(options.resumeSaveIntervalSeconds) * 1_000_000_000 {
                lastResumeSaveNanoseconds = now
                saveResumeData()
            }
        case .checking:
            if now - lastStatus >= 250_000_000 {
                lastStatus = now
                var snapshot = currentStatus(phase: .checking, now: now)
                snapshot.checkedBytes = checkedBytes
                statusHandler?(snapshot)
            }
        case .stoppingTrackers:
            trackers?.tick(now: now)
        default:
            break
        }
        scheduleTick(now: now)
    }

    /// Ticks come every 250 ms while anything moves (peers, a check, an ending). A torrent at rest (no
    /// peers to time out, nothing to request) ticks every 5 s while it has trackers to announce to, and
    /// every 30 s without: thousands of idle torrents on one reactor then cost next to nothing. Whatever
    /// wakes it (a peer arriving, a tracker's answer) brings the 250 ms ticks back (`service`).
    private func scheduleTick(now: UInt64) {
        if lifecycle.ending != nil { return }
        var interval: UInt64 = 250_000_000
        if isAtRest { interval = trackers == nil ? 30_000_000_000 : 5_000_000_000 }
        if let limit = options.seedTimeLimitSeconds, let since = seedingSince {
            let end = since + UInt64(max(0, limit)) * 1_000_000_000
            interval = min(interval, end > now ? end - now : 1_000_000)
        }
        tickDeadline = now + interval
        reactor.schedule(tenant, at: tickDeadline)
    }

    private var isAtRest: Bool {
        guard isTrading, acceptRetryAt == nil else { return false }
        return !links.contains { $0 != nil } && (verified.isComplete || candidates.isEmpty)
    }

    /// A rate limit held work back: be serviced again when it allows.
    private func scheduleThrottleWake(now: UInt64) {
        var wait: UInt64 = 100_000_000
        if uploadThrottled { wait = min(wait, uploadLimiter.nanosecondsUntilAllowed()) }
        if downloadThrottled { wait = min(wait, downloadLimiter.nanosecondsUntilAllowed()) }
        let deadline = now + max(wait, 1_000_000)
        if deadline < tickDeadline {
            tickDeadline = deadline
            reactor.schedule(tenant, at: deadline)
        }
    }

    private func fail(_ error: DownloadError) {
        if failure == nil { failure = error }
        reactor.touch(tenant)
    }

    /// Why seeding should stop now (`seedRatioLimit`, `seedTimeLimitSeconds`), or nil.
    private func seedLimitReached(now: UInt64) -> String? {
        if let ratio = options.seedRatioLimit,
            Double(uploadedBytes) >= ratio * Double(max(1, metainfo.totalLength))
        {
            return "uploaded \(uploadedBytes) bytes, ratio \(ratio) reached"
        }
        if let limit = options.seedTimeLimitSeconds, let since = seedingSince,
            now - since >= UInt64(max(0, limit)) * 1_000_000_000
        {
            return "seeded for \(limit) s"
        }
        return nil
    }

    /// Loads resume data; returns the check to run of whatever on disk it does not vouch for (nil:
    /// nothing to check).
    private func restoreProgress() throws(DownloadError) -> Recheck? {
        let current =
            (try? ResumeData.currentFileStatuses(
                layout: metainfo.layout, downloadDirectory: options.downloadDirectory)) ?? []
        // Nil: check every piece.
        var piecesToCheck: [PieceIndex]?
        if let resume = try? ResumeData.load(
            from: resumePath, infoHash: metainfo.wireInfoHash, layout: metainfo.layout)
        {
            verified = resume.trustedPieces(current: current, layout: metainfo.layout)
            // Pieces written since the last save (a kill) are on disk but not vouched for: check them.
            let present = PresentPieces.find(
                layout: metainfo.layout, downloadDirectory: options.downloadDirectory, excluding: verified)
            log(
                "resume data: \(verified.count) of \(metainfo.pieceCount) pieces trusted"
                    + (present.isEmpty ? "" : "; checking \(present.count) more found on disk"))
            guard !present.isEmpty else { return nil }
            piecesToCheck = present
        } else {
            guard current.contains(where: { ($0?.sizeBytes ?? 0) > 0 }) else { return nil }
            // Data without (valid) resume data: check it before trusting any of it.
            log("no valid resume data; checking existing files")
        }
        do {
            return try Recheck(
                metainfo: metainfo, downloadDirectory: options.downloadDirectory, ring: ring,
                pool: pieceBuffers, hashPool: hashers, pieces: piecesToCheck,
                maxPiecesInFlight: max(2, min(8, pieceBuffers.slotCount / 2)), tenant: tenant)
        } catch {
            throw .storage(error)
        }
    }

    /// The check moved on: count its bytes; when it is done, run; when it was stopped and has nothing
    /// left in flight, end (nothing is known yet, so nothing is saved).
    private func checkProgressed(_ events: [RecheckEvent], now: UInt64) {
        guard lifecycle.stage == .checking, let recheck else { return }
        for event in events {
            switch event {
            case .pieceChecked(let piece, _):
                checkedBytes += Int64(geometry.length(of: piece))
            case .finished(let result):
                result.forEach { verified.insert($0) }
                log("check found \(verified.count) of \(metainfo.pieceCount) pieces on disk")
                self.recheck = nil
                advance(.checkFinished(isComplete: verified.isComplete), now: now)
                return
            }
        }
        if lifecycle.stopRequestedWhileChecking && !recheck.hasWorkInFlight {
            log("check interrupted")
            advance(.checkDrained, now: now)
        }
    }

    /// Data on disk is known: start trading (once).
    private func startTrading(now: UInt64) {
        guard !trading else { return }
        trading = true
        pipeline = RequestPipeline(
            geometry: geometry, have: verified, seed: options.seed, dataBlockCounts: dataBlockCounts)
        actions.removeAll(keepingCapacity: true)
        limitPiecesToFreeBuffers(now: now)
        lastResumeSaveNanoseconds = now
        armAccept()
        startTrackers()
        connectToCandidates()
        reportStatus(now: now)
    }

    /// Everything is here: flush, save resume data once it is on disk, and give every slot to uploads.
    private func becomeSeed(now: UInt64) {
        guard !completionSaved else { return }
        completionSaved = true
        seedingSince = now
        if !flushRequested {
            flushRequested = true
            store.flush()
        }
        chokeActions.removeAll(keepingCapacity: true)
        choker.setSeeding(true, at: Instant(nanoseconds: now), into: &chokeActions)
        performChokes()
        log("seeding \(metainfo.name)")
        reportStatus(now: now)
    }

    /// Shuts every connection (without the disconnect bookkeeping: the torrent is leaving); each link
    /// is released once its operations have completed.
    private func closeLinks() {
        for case let link? in links {
            if !link.closing { logTotals(link) }
            link.closing = true
            if link.connectInFlight {
                _ = try? ring.enqueue(
                    .cancel(CompletionToken(slot: link.operationSlot, kind: .connect), all: true),
                    for: OperationSlot(
                        owner: Self.peerOwner, tenant: tenant, index: OperationSlot.maximumIndex,
                        generation: 0))
            }
            shutdown(link)
            if !link.hasOperationsInFlight { release(link) }
        }
    }

    private func saveResumeData() {
        let current =
            (try? ResumeData.currentFileStatuses(
                layout: metainfo.layout, downloadDirectory: options.downloadDirectory)) ?? []
        let resume = ResumeData(infoHash: metainfo.wireInfoHash, verified: verified, files: current)
        do {
            try resume.save(to: resumePath)
        } catch {
            log("could not save resume data: \(error)")
        }
    }

    private func reportStatus(now: UInt64) {
        lastStatus = now
        statusHandler?(currentStatus(phase: verified.isComplete ? .seeding : .downloading, now: now))
    }

    private func currentStatus(phase: DownloadStatus.Phase, now: UInt64) -> DownloadStatus {
        var verifiedBytes: Int64 = 0
        for piece in verified.pieces { verifiedBytes += Int64(geometry.length(of: piece)) }
        return DownloadStatus(
            phase: phase, verifiedPieces: verified.count, pieceCount: metainfo.pieceCount,
            verifiedBytes: verifiedBytes, totalBytes: metainfo.totalLength,
            downloadedPayloadBytes: downloadedBytes,
            downloadRateBytesPerSecond: rate.rateBytesPerSecond(at: Instant(nanoseconds: now)),
            uploadRateBytesPerSecond: uploadRate.rateBytesPerSecond(at: Instant(nanoseconds: now)),
            connectedPeers: links.reduce(0) { $0 + ($1?.connected == true ? 1 : 0) },
            knownPeers: candidates.count, checkedBytes: 0, uploadedPayloadBytes: uploadedBytes,
            listenAddress: boundAddress, trackerState: trackers?.state)
    }

    // MARK: Connections

    private func connectToCandidates() {
        let now = nowNanoseconds
        let connectedCount = links.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        var budget = options.maximumPeers - connectedCount
        for index in candidates.indices where budget > 0 {
            guard !candidates[index].connected, !candidates[index].banned, candidates[index].retryAt <= now
            else {
                continue
            }
            if connect(to: index, now: now) { budget -= 1 }
        }
    }

    private func connect(to candidateIndex: Int, now: UInt64) -> Bool {
        let address = candidates[candidateIndex].address
        guard options.sharedConnectionBudget?.acquire() ?? true else { return false }
        guard let fd = try? Socket.makeTCP(family: address.family) else {
            options.sharedConnectionBudget?.release()
            return false
        }
        let link = makeLink(fd: fd, address: address, initiatedLocally: true)
        candidates[candidateIndex].connected = true
        do {
            try ring.enqueue(.connect(fd: fd, address: address), for: link.operationSlot, flags: .link)
            try ring.enqueue(.linkTimeout(.seconds(10)), for: link.operationSlot)
            link.connectInFlight = true
        } catch {
            failure = .io(error)
        }
        return true
    }

    /// A table entry for a new connection, reusing a free one (with a new generation).
    private func makeLink(fd: Int32, address: SocketAddress, initiatedLocally: Bool) -> PeerLink {
        Socket.setNoDelay(fd)
        let index = links.firstIndex { $0 == nil } ?? links.count
        if index == links.count {
            links.append(nil)
            linkGenerations.append(0)
        }
        linkGenerations[index] &+= 1
        let connection = PeerConnection(
            geometry: geometry, infoHash: metainfo.wireInfoHash, localPeerID: localPeerID,
            localPieces: verified,
            initiatedLocally: initiatedLocally)
        let link = PeerLink(
            slot: PeerSlot(UInt32(index)), generation: linkGenerations[index], tenant: tenant,
            address: address,
            fd: fd, connection: connection, initiatedLocally: initiatedLocally)
        links[index] = link
        return link
    }

    private func armAccept() {
        guard listenerFD >= 0 else { return }
        do {
            try ring.enqueue(
                .accept(fd: listenerFD, multishot: ring.features.contains(.multishotAccept)),
                for: OperationSlot(owner: Self.listenerOwner, tenant: tenant, index: 0, generation: 1))
        } catch {
            failure = .io(error)
        }
    }

    private func acceptCompleted(_ completion: Completion, now: UInt64) {
        guard completion.result >= 0 else {
            // Out of descriptors (or memory), a new accept would fail at once, again and again, while
            // peers wait in the backlog: try again on a later tick, and say so once per reason.
            let errno = Errno(rawValue: -completion.result)
            if loggedAcceptErrors.insert(errno).inserted {
                log("accept: \(errno); incoming peers wait until it clears (said once)")
            }
            if !completion.hasMore { acceptRetryAt = now + Self.acceptRetryNanoseconds }
            return
        }
        if !completion.hasMore { armAccept() }
        adoptIncoming(completion.result, now: now)
    }

    /// An incoming connection, accepted here or routed from an `IncomingRouter`: it starts by reading
    /// the peer's handshake.
    /// An accepted socket becomes a link. `plaintextRead`: the router already answered the peer's
    /// encryption exchange and read these plain bytes from it.
    private func adoptIncoming(_ fd: Int32, plaintextRead: [UInt8]? = nil, now: UInt64) {
        let connectedCount = links.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        guard connectedCount < options.maximumPeers, let address = try? Socket.peerAddress(of: fd) else {
            log("refused an incoming connection: \(options.maximumPeers) peers already")
            Glibc.close(fd)
            return
        }
        guard options.sharedConnectionBudget?.acquire() ?? true else {
            log(
                "peer \(address): refused: \(options.sharedConnectionBudget?.limit ?? 0) connections already "
                    + "across all torrents")
            Glibc.close(fd)
            return
        }
        let link = makeLink(fd: fd, address: address, initiatedLocally: false)
        link.connected = true
        link.connection.start(now: Instant(nanoseconds: now))
        if let plaintextRead {
            link.openingSeen = true
            if !plaintextRead.isEmpty { plaintextRead.withUnsafeBytes { parse($0, link: link, now: now) } }
        }
        if !link.closing { armReceive(link) }
    }

    private func link(for slot: OperationSlot) -> PeerLink? {
        let index = Int(slot.index)
        guard index < links.count, let link = links[index], link.generation == slot.generation else {
            return nil
        }
        return link
    }

    private func route(_ completion: Completion, now: UInt64) {
        switch completion.slot.owner {
        case Self.peerOwner:
            peerCompleted(completion, now: now)
        case Self.listenerOwner:
            acceptCompleted(completion, now: now)
        case TrackerClient.owner:
            trackerCompleted(completion, now: now)
        case PieceStore.completionOwner:
            var events: [StorageEvent] = []
            store.handle(completion, into: &events)
            for event in events { storageEvent(event, now: now) }
        default:
            break
        }
    }

    private func peerCompleted(_ completion: Completion, now: UInt64) {
        guard let link = link(for: completion.slot) else {
            // A late completion for a closed link: only a provided buffer needs giving back.
            if let id = completion.bufferID { providedBuffers?.recycle(id) }
            return
        }
        switch completion.token.kind {
        case .connect:
            link.connectInFlight = false
            guard completion.result == 0 else {
                disconnect(link, reason: "connect: \(Errno(rawValue: -completion.result))", now: now)
                return
            }
            link.connected = true
            link.connection.start(now: Instant(nanoseconds: now))
            armReceive(link)
        case .linkTimeout:
            break
        case .receive:
            receiveCompleted(completion, link: link, now: now)
        case .send, .sendMessage:
            sendCompleted(completion, link: link, now: now)
        default:
            break
        }
        if link.closing && !link.hasOperationsInFlight { release(link) }
    }

    private func armReceive(_ link: PeerLink) {
        guard !link.receiveInFlight, !link.closing else { return }
        let operation: Operation
        if let providedBuffers {
            operation = .receiveProvided(fd: link.fd, group: providedBuffers.group, multishot: true)
        } else {
            if link.receiveBuffer == nil {
                link.receiveBuffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 64)
            }
            operation = .receive(fd: link.fd, into: link.receiveBuffer!)
        }
        do {
            try ring.enqueue(operation, for: link.operationSlot)
            link.receiveInFlight = true
        } catch {
            failure = .io(error)
        }
    }

    private func receiveCompleted(_ completion: Completion, link: PeerLink, now: UInt64) {
        if !completion.hasMore { link.receiveInFlight = false }
        if completion.result == -ENOBUFS {
            // Every receive buffer is in use; they come back as peers' data is parsed.
            armReceiveLater(link)
            return
        }
        guard completion.result > 0 else {
            if let id = completion.bufferID { providedBuffers?.recycle(id) }
            disconnect(
                link,
                reason: completion.result == 0
                    ? "closed by peer" : "recv: \(Errno(rawValue: -completion.result))", now: now)
            return
        }
        let count = Int(completion.result)
        let bytes: UnsafeRawBufferPointer
        if let id = completion.bufferID, let providedBuffers {
            bytes = providedBuffers.bytes(id, count: count)
        } else if let buffer = link.receiveBuffer {
            bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
        } else {
            return
        }
        if link.openingSeen && link.encryption == nil {
            parse(bytes, link: link, now: now)
        } else {
            receiveOpening(bytes, link: link, now: now)
        }
        if let id = completion.bufferID { providedBuffers?.recycle(id) }
        if !link.receiveInFlight && !link.closing { armReceive(link) }
    }

    /// An incoming peer's first bytes: the plain handshake starts with 19 ("\u{13}BitTorrent
    /// protocol"); anything else is taken for the encryption exchange (MSE/PE), which ends with plain
    /// peer wire from then on (Potluck selects plaintext, so uploads stay zero-copy).
    private func receiveOpening(_ bytes: UnsafeRawBufferPointer, link: PeerLink, now: UInt64) {
        guard !link.openingSeen else { return advanceEncryption(bytes, link: link, now: now) }
        // The first 20 bytes decide: a plain handshake's protocol name, or anything else (an MSE key,
        // whose first byte alone is 19, like the name's length, once in 256 connections).
        link.openingBytes.append(contentsOf: bytes)
        let opening = link.openingBytes
        switch HandshakePrefix.classify(opening) {
        case .needMore where opening.count < 1 + Handshake.protocolName.count:
            return
        case .needMore, .infoHash:
            link.openingSeen = true
            link.openingBytes = []
            opening.withUnsafeBytes { parse($0, link: link, now: now) }
        case .notBitTorrent:
            link.openingSeen = true
            link.openingBytes = []
            var privateKey = [UInt8](repeating: 0, count: 20)
            for index in privateKey.indices { privateKey[index] = UInt8.random(in: 0...255) }
            let padding = (0..<Int.random(in: 0...64)).map { _ in UInt8.random(in: 0...255) }
            link.encryption = EncryptionHandshakeResponder(
                knownInfoHashes: [metainfo.wireInfoHash], privateKey: privateKey, padding: padding)
            advanceEncryption(opening, link: link, now: now)
        }
    }

    /// The peer's next bytes of its encryption exchange.
    private func advanceEncryption(_ bytes: some Collection<UInt8>, link: PeerLink, now: UInt64) {
        guard var exchange = link.encryption else { return }
        let step: EncryptionHandshakeResponder.Step
        do {
            step = try exchange.receive(bytes)
        } catch {
            link.encryption = nil
            disconnect(link, reason: "encrypted handshake refused: \(error)", now: now)
            return
        }
        link.connection.outbound += exchange.takeOutbound()
        switch step {
        case .needMoreBytes:
            link.encryption = exchange
        case .established(_, let plaintext):
            link.encryption = nil
            log("peer \(link.address): encrypted handshake (MSE/PE) done, plaintext selected")
            plaintext.withUnsafeBytes { parse($0, link: link, now: now) }
        }
    }

    private var receivesToRearm: [PeerLink] = []

    private func armReceiveLater(_ link: PeerLink) {
        receivesToRearm.append(link)
    }

    /// Feeds received bytes to the connection; copies block payloads into their piece buffers on the way.
    private func parse(_ bytes: UnsafeRawBufferPointer, link: PeerLink, now: UInt64) {
        pendingEvents.removeAll(keepingCapacity: true)
        let time = Instant(nanoseconds: now)
        do {
            let span = Span<UInt8>(_unsafeBytes: bytes)
            try link.connection.receive(span, now: time) { event in
                switch event {
                case .handshakeCompleted(_, let negotiated):
                    pendingEvents.append(
                        .handshake(extensionProtocol: negotiated.contains(.extensionProtocol)))
                case .extended(let id, let payload) where id == 0:
                    var bytes = [UInt8]()
                    bytes.reserveCapacity(payload.count)
                    for i in payload.indices { bytes.append(payload[i]) }
                    pendingEvents.append(.extensionHandshake(bytes))
                case .peerBitfield: pendingEvents.append(.bitfield)
                case .peerHasAll: pendingEvents.append(.haveAll)
                case .peerHasNone: pendingEvents.append(.haveNone)
                case .peerHas(let piece): pendingEvents.append(.have(piece))
                case .peerChokedUs: pendingEvents.append(.choked)
                case .peerInterested: pendingEvents.append(.interested)
                case .peerNotInterested: pendingEvents.append(.notInterested)
                case .peerUnchokedUs: pendingEvents.append(.unchoked)
                case .blockData(let block, let offsetInBlock, let payload):
                    // A block whose first bytes found no buffer is dropped whole, or its later bytes
                    // could land beside a gap.
                    if offsetInBlock == 0 { link.droppingBlock = nil }
                    var copied = false
                    if link.droppingBlock != block {
                        copied = copyBlockData(block, offsetInBlock: offsetInBlock, payload: payload)
                        if !copied { link.droppingBlock = block }
                    }
                    if offsetInBlock + payload.count == Int(block.length) {
                        pendingEvents.append(copied ? .blockComplete(block) : .blockUnused(block))
                    }
                case .requestRejected(let block): pendingEvents.append(.rejected(block))
                case .requestReceived(let block): pendingEvents.append(.request(block))
                default: break
                }
            }
        } catch {
            disconnect(link, reason: "protocol: \(error)", now: now)
            return
        }
        let instant = Instant(nanoseconds: now)
        actions.removeAll(keepingCapacity: true)
        for event in pendingEvents {
            switch event {
            case .handshake(let extensionProtocol):
                pipeline.peerConnected(link.slot)
                choker.peerConnected(link.slot, at: instant)
                if extensionProtocol {
                    let ours = Self.extensionHandshake.encoded()
                    _ = link.connection.sendExtended(id: 0, payload: ours.span)
                }
            case .extensionHandshake(let payload):
                // BEP 10: `reqq` bounds how many requests the peer queues; more would be dropped.
                if let theirs = try? ExtensionHandshake(decoding: payload),
                    let length = theirs.requestQueueLength
                {
                    pipeline.peerAdvertisedRequestQueue(link.slot, length: length)
                }
            case .bitfield:
                pipeline.peerBitfield(link.slot, link.connection.peerPieces, into: &actions)
            case .haveAll:
                pipeline.peerHaveAll(link.slot, into: &actions)
            case .haveNone:
                pipeline.peerHaveNone(link.slot, into: &actions)
            case .have(let piece):
                pipeline.peerHave(link.slot, piece, into: &actions)
            case .choked:
                pipeline.peerChokedUs(link.slot)
            case .unchoked:
                pipeline.peerUnchokedUs(link.slot, at: instant, into: &actions)
            case .blockComplete(let block):
                blockCompleted(block, from: link, now: now)
            case .rejected(let block), .blockUnused(let block):
                // Open again at once: waiting for a snub timeout would stall the piece for seconds.
                pipeline.requestReturned(block, from: link.slot, at: instant, into: &actions)
            case .request(let block):
                enqueueUpload(block, for: link)
            case .interested:
                choker.peerInterested(link.slot, at: instant, into: &chokeActions)
            case .notInterested:
                choker.peerNotInterested(link.slot, at: instant, into: &chokeActions)
            }
        }
        perform(actions)
        performChokes()
        serveUploads()
    }

    /// Copies part of a block into its piece buffer; false when the block is not wanted (already in,
    /// or the piece is being hashed or written).
    private func copyBlockData(_ block: BlockRange, offsetInBlock: Int, payload: Span<UInt8>) -> Bool {
        let state = pipeline.picker.state(of: block.piece)
        guard state == .downloading || state == .missing, pipeline.picker.blockState(of: block) != .received
        else {
            return false
        }
        let slot: BufferSlot
        if let existing = assembling[block.piece] {
            slot = existing
        } else if let fresh = pieceBuffers.lease() {
            assembling[block.piece] = fresh
            slot = fresh
        } else {
            // Out of piece memory: the block is dropped and will be asked for again.
            droppedBlocks += 1
            return false
        }
        let memory = pieceBuffers.bytes(of: slot)
        let start = Int(block.offset) + offsetInBlock
        payload.withUnsafeBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: memory[start..<start + source.count]).copyMemory(
                from: source)
        }
        return true
    }

    private func blockCompleted(_ block: BlockRange, from link: PeerLink, now: UInt64) {
        let receipt = pipeline.blockReceived(
            block, from: link.slot, at: Instant(nanoseconds: now), into: &actions)
        guard case .accepted(let pieceComplete) = receipt else { return }
        downloadedBytes += Int64(block.length)
        rate.record(bytes: Int(block.length), at: Instant(nanoseconds: now))
        choker.receivedPayload(from: link.slot, bytes: Int(block.length), at: Instant(nanoseconds: now))
        guard pieceComplete, let slot = assembling[block.piece] else { return }
        if metainfo.infoHashV1 != nil {
            // SHA-1 covers the whole piece, padding included: the zeros nobody was asked for go in here.
            if let dataBlocks = dataBlockCounts[block.piece] {
                let memory = pieceBuffers.bytes(of: slot)
                let padding = dataBlocks * Int(geometry.blockLength)..<geometry.length(of: block.piece)
                UnsafeMutableRawBufferPointer(rebasing: memory[padding]).initializeMemory(
                    as: UInt8.self, repeating: 0)
            }
            submitHash(slot, length: geometry.length(of: block.piece), kind: .sha1, piece: block.piece)
        } else if let check = metainfo.v2PieceCheck(block.piece) {
            // The file's own bytes: what a peer sent for the alignment gap after a file is in no hash.
            submitHash(
                slot, length: check.dataLength, kind: .merkleRoot(leafCount: check.leafCount),
                piece: block.piece)
        } else {
            // Nothing to check it against (a piece layer we lack): the piece cannot pass, by no peer's fault.
            pieceChecked(block.piece, in: slot, passed: false, isLocalFault: true, now: now)
        }
    }

    /// Pieces are read into the upload cache with fixed-buffer reads when the kernel lets us register
    /// it (no page pinning per read); without, plain reads do the same job. Registered on the first
    /// read rather than at start: registering pins all of the cache's memory, 64 MiB that a leecher
    /// nobody asks for pieces would otherwise carry.
    private func registerPieceCache() {
        pieceCacheRegistrationTried = true
        // Registering with operations in flight is safe from Linux 6.0 (which multishot receive dates);
        // older kernels quiesce the ring, waiting for receives that may never complete.
        // A ring registers one table of buffers: it is for a torrent alone on its reactor (`download`).
        guard let pool = pieceCache?.pool, reactor.torrentCount == 1,
            ring.features.isSuperset(of: [.registeredBuffers, .multishotReceive])
        else { return }
        do {
            try ring.registerBuffers(pool)
            store.useRegisteredPool(pool)
            pieceCacheRegistered = true
            log("piece cache: \(pool.slotCount) pieces registered for fixed-buffer reads")
        } catch {
            log("piece cache not registered with the ring (\(error)); plain reads instead")
        }
    }

    private func pieceHashed(_ result: HashResult, now: UInt64) {
        hashesInFlight -= 1
        guard let slot = result.slot else { preconditionFailure("the session hashes only its piece buffers") }
        let piece = PieceIndex(UInt32(truncatingIfNeeded: result.token))
        let passed: Bool
        switch result.digest {
        case .sha1(let digest): passed = metainfo.pieceHash(piece) == digest
        case .merkleRoot(let root): passed = metainfo.v2PieceCheck(piece)?.expectedRoot == root
        default: passed = false
        }
        actions.removeAll(keepingCapacity: true)
        pieceChecked(piece, in: slot, passed: passed, now: now)
        perform(actions)
    }

    /// Writes a piece that passed, or drops one that failed and charges its senders (unless the fault
    /// is likely ours). Appends to `actions`.
    private func pieceChecked(
        _ piece: PieceIndex, in slot: BufferSlot, passed: Bool, isLocalFault: Bool = false, now: UInt64
    ) {
        let instant = Instant(nanoseconds: now)
        if passed && (failure != nil || lifecycle.isEnding) {
            // Leaving (after an error such as a full disk, or after the last writes were awaited):
            // nothing more is written.
            assembling[piece] = nil
            pieceBuffers.release(slot)
            return
        }
        if passed {
            let digests = pipeline.needsBlockDigests(toPass: piece) ? blockDigests(piece, in: slot) : nil
            let banned = pipeline.pieceHashPassed(piece, blockDigests: digests, at: instant, into: &actions)
            for peer in banned { ban(peer, reason: "sent corrupt data", now: now) }
            writing.insert(piece)
            store.writePiece(piece, from: slot, in: pieceBuffers)
            limitPiecesToFreeBuffers(now: now)
        } else {
            let digests = isLocalFault ? nil : blockDigests(piece, in: slot)
            assembling[piece] = nil
            pieceBuffers.release(slot)
            let report = pipeline.pieceHashFailed(
                piece, blockDigests: digests, at: instant, isLocalFault: isLocalFault, into: &actions)
            let senders = report.contributors.map(\.value)
            if isLocalFault {
                log("\(piece) has no hash to check it against; sent by peers \(senders)")
            } else if report.isLikelyLocalFault {
                log(
                    "\(piece) failed its hash check; sent by peers \(senders), and every peer that sent it "
                        + "failed it: likely a local fault, nobody is banned for it")
            } else {
                log("\(piece) failed its hash check; sent by peers \(senders)")
            }
            for peer in report.peersToBan { ban(peer, reason: "sent corrupt data repeatedly", now: now) }
        }
    }

    /// A checksum of each block of a piece in its buffer (the first 8 bytes of its SHA-1), so that once a
    /// failed piece passes, the peers whose blocks differed are proven liars. Computed only for a failed
    /// piece and for the pass that follows one: never on the data path.
    private func blockDigests(_ piece: PieceIndex, in slot: BufferSlot) -> [UInt64] {
        let memory = UnsafeRawBufferPointer(pieceBuffers.bytes(of: slot))
        return (0..<geometry.blockCount(of: piece)).map { index in
            let block = geometry.block(index, of: piece)
            let start = Int(block.offset)
            let digest = SHA1.hash(
                UnsafeRawBufferPointer(rebasing: memory[start..<start + Int(block.length)]))
            return digest.bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// Pieces in progress may hold only the piece buffers that verified pieces waiting for the disk do
    /// not: beyond that, blocks would arrive with nowhere to go and be dropped. Appends to `actions`.
    private func limitPiecesToFreeBuffers(now: UInt64) {
        pipeline.limitPiecesInProgress(
            to: pieceBuffers.slotCount - writing.count, at: Instant(nanoseconds: now), into: &actions)
    }

    private func storageEvent(_ event: StorageEvent, now: UInt64) {
        switch event {
        case .pieceWritten(let piece, let slot):
            writing.remove(piece)
            assembling[piece] = nil
            pieceBuffers.release(slot)
            verified.insert(piece)
            for case let link? in links where link.connection.isEstablished {
                link.connection.sendHave(piece)
            }
            actions.removeAll(keepingCapacity: true)
            limitPiecesToFreeBuffers(now: now)
            perform(actions)
        case .flushed:
            flushed = true
            // Seeding from here on: what was verified is now on disk, so resume data may say so.
            if completionSaved { saveResumeData() }
        case .blockRead(let token, let block):
            uploadRead(token: token, block: block, now: now)
        case .pieceRead(let piece, _):
            cachedPieceRead(piece)
        case .failed(let request, let error):
            if case .readBlock(let token, let block) = request {
                log("upload read failed: \(error)")
                uploadReadFailed(token: token, block: block)
                return
            }
            if case .readPiece(let piece, _) = request {
                pieceCache?.loadFailed(piece)
                if error.reason != .overloaded {
                    log("upload read failed: \(error); serving \(piece) block by block")
                    uncachedPieces.insert(piece)
                }
                serveUploads()
                return
            }
            if case .writePiece(let piece, let slot) = request {
                writing.remove(piece)
                assembling[piece] = nil
                pieceBuffers.release(slot)
            }
            failure = .storage(error)
        }
    }

    private func perform(_ actions: [RequestAction]) {
        var unsent: [(PeerSlot, BlockRange)] = []
        for action in actions {
            switch action {
            case .request(let peer, let block):
                // A request the connection cannot send (its queue is full, the peer choked us meanwhile)
                // must not stay assigned, or the block waits for a snub timeout. Nor may one the download
                // limit holds back: it is made again once the limit allows. The limit is charged when a
                // block is requested, so what is in flight never exceeds it by more than one block.
                guard downloadLimiter.take(Int(block.length)) else {
                    downloadThrottled = true
                    unsent.append((peer, block))
                    continue
                }
                if let link = links[Int(peer.value)], !link.connection.request(block) {
                    unsent.append((peer, block))
                }
            case .cancel(let peer, let block):
                links[Int(peer.value)].map { _ = $0.connection.cancel(block) }
            case .interested(let peer):
                links[Int(peer.value)].map { _ = $0.connection.sendInterested() }
            case .notInterested(let peer):
                links[Int(peer.value)].map { _ = $0.connection.sendNotInterested() }
            }
        }
        var none: [RequestAction] = []
        for (peer, block) in unsent {
            pipeline.requestReturned(
                block, from: peer, at: Instant(nanoseconds: nowNanoseconds), refill: false, into: &none)
        }
    }

    /// Tops up every peer's request queue (after the download limit held requests back).
    private func refillAllRequests(now: UInt64) {
        actions.removeAll(keepingCapacity: true)
        for case let link? in links where pipeline.isConnected(link.slot) {
            pipeline.fillRequests(for: link.slot, at: Instant(nanoseconds: now), into: &actions)
        }
        perform(actions)
    }

    // MARK: Uploading

    private func performChokes() {
        for action in chokeActions {
            switch action {
            case .choke(let peer): links[Int(peer.value)].map { _ = $0.connection.choke() }
            case .unchoke(let peer): links[Int(peer.value)].map { _ = $0.connection.unchoke() }
            }
        }
        chokeActions.removeAll(keepingCapacity: true)
    }

    /// Serves waiting requests, one per peer in turn (so a peer that queues many requests does not
    /// starve the others), while the upload limit, the cache and the upload buffers allow. A block of a
    /// cached piece is queued for sending at once from the cache; an uncached piece is read whole into
    /// the cache (a popular piece is then read once for every peer); when the cache is all pinned or
    /// loading, a block is read into an upload buffer. Back-pressure: requests wait in their link's
    /// queue, bounded by the connection's request limit, and each link has at most
    /// `maximumQueuedPayloadsPerLink` blocks read or queued unsent.
    private func serveUploads() {
        guard !stopping, !links.isEmpty else { return }
        let now = Instant(nanoseconds: nowNanoseconds)
        var progressed = true
        while progressed {
            progressed = false
            for _ in 0..<links.count {
                uploadCursor = uploadCursor + 1 < links.count ? uploadCursor + 1 : 0
                guard let link = links[uploadCursor], !link.closing,
                    link.uploadQueueHead < link.uploadQueue.count
                else { continue }
                switch serveNextRequest(of: link, now: now) {
                case .served: progressed = true
                case .waiting: continue
                case .outOfResources: return
                }
            }
        }
    }

    private enum ServeOutcome {
        /// The request at the head of the queue was served, read, or dropped.
        case served
        /// This link must wait (its piece is loading, or it has enough queued).
        case waiting
        /// No link can be served now (upload limit, no upload buffer).
        case outOfResources
    }

    private func serveNextRequest(of link: PeerLink, now: Instant) -> ServeOutcome {
        guard link.payloads.count + link.readsInFlight < Self.maximumQueuedPayloadsPerLink else {
            return .waiting
        }
        let block = link.uploadQueue[link.uploadQueueHead]
        // Cancelled, or dropped by a choke, since: not worth a read.
        guard link.connection.isIncomingRequestQueued(block), verified.contains(block.piece) else {
            popUploadRequest(link)
            return .served
        }
        guard uploadLimiter.allows() else {
            uploadThrottled = true
            return .outOfResources
        }
        // At least two pieces, or the cache would serialise peers behind one read.
        if pieceCache == nil, options.uploadCacheBytes >= 2 * metainfo.pieceLength {
            pieceCache = PieceCache(
                pieceLength: metainfo.pieceLength,
                capacity: min(1024, metainfo.pieceCount, options.uploadCacheBytes / metainfo.pieceLength))
        }
        // In place (`pieceCache!`): a copy of the cache would copy its table on every request.
        if pieceCache != nil, !uncachedPieces.contains(block.piece) {
            switch pieceCache!.lookup(block.piece) {
            case .ready(let slot):
                popUploadRequest(link)
                let start = Int(block.offset)
                let bytes = UnsafeRawBufferPointer(
                    rebasing: pieceCache!.pool.bytes(of: slot)[start..<start + Int(block.length)])
                if queuePayload(block, bytes: bytes, source: .cachedPiece(block.piece), link: link, now: now)
                {
                    pieceCache!.pin(block.piece)
                    uploadLimiter.spend(Int(block.length))
                }
                return .served
            case .loading:
                return .waiting
            case .absent:
                if let slot = pieceCache!.beginLoad(block.piece) {
                    if !pieceCacheRegistrationTried { registerPieceCache() }
                    store.readPiece(block.piece, into: slot, in: pieceCache!.pool)
                    return .waiting
                }
            // Every slot is loading or pinned: read just the block.
            }
        }
        guard let buffer = uploadBuffers.lease() else { return .outOfResources }
        popUploadRequest(link)
        uploadLimiter.spend(Int(block.length))
        link.readsInFlight += 1
        uploadLeases[Int(buffer.index)] = buffer
        let token = UInt64(link.slot.value) | UInt64(link.generation) << 32 | UInt64(buffer.index) << 48
        store.readBlock(block, into: buffer, in: uploadBuffers, token: token)
        return .served
    }

    /// Queues a request the connection accepted. The connection holds at most its request limit, but
    /// requests it dropped since (cancelled, or refused by a choke) stay here until served: a peer that
    /// requests and cancels over and over while uploads wait would grow the queue without end, so past
    /// twice the limit the dropped ones are swept out (in place: no allocation).
    private func enqueueUpload(_ block: BlockRange, for link: PeerLink) {
        if link.uploadQueue.count - link.uploadQueueHead >= 2
            * link.connection.options.maximumIncomingRequests
        {
            link.uploadQueue.removeFirst(link.uploadQueueHead)
            link.uploadQueueHead = 0
            link.uploadQueue.removeAll { !link.connection.isIncomingRequestQueued($0) }
        }
        link.uploadQueue.append(block)
    }

    private func popUploadRequest(_ link: PeerLink) {
        link.uploadQueueHead += 1
        if link.uploadQueueHead == link.uploadQueue.count {
            link.uploadQueue.removeAll(keepingCapacity: true)
            link.uploadQueueHead = 0
        } else if link.uploadQueueHead >= 256 {
            link.uploadQueue.removeFirst(link.uploadQueueHead)
            link.uploadQueueHead = 0
        }
    }

    /// Queues a piece header in the connection's outbound bytes and the payload after it, to be sent
    /// from `bytes` without copying; false (nothing queued) if the request is no longer wanted.
    private func queuePayload(
        _ block: BlockRange, bytes: UnsafeRawBufferPointer, source: QueuedPayload.Source, link: PeerLink,
        now: Instant
    ) -> Bool {
        guard !link.closing, let position = link.connection.sendBlockHeader(block) else { return false }
        link.payloads.append(QueuedPayload(position: position, bytes: bytes, source: source))
        uploadedBytes += Int64(block.length)
        uploadRate.record(bytes: Int(block.length), at: now)
        choker.sentPayload(to: link.slot, bytes: Int(block.length), at: now)
        return true
    }

    /// A piece read for the cache: serve the requests waiting for it.
    private func cachedPieceRead(_ piece: PieceIndex) {
        pieceCache?.loadCompleted(piece)
        serveUploads()
    }

    /// A block read into an upload buffer: queue it for sending, unless the peer cancelled or went away.
    private func uploadRead(token: UInt64, block: BlockRange, now: UInt64) {
        let index = Int(token & 0xffff_ffff)
        let generation = UInt16(truncatingIfNeeded: token >> 32)
        let bufferIndex = Int(token >> 48)
        guard bufferIndex < uploadLeases.count, let buffer = uploadLeases[bufferIndex] else { return }
        if index < links.count, let link = links[index], link.generation == generation {
            link.readsInFlight -= 1
            let bytes = UnsafeRawBufferPointer(
                rebasing: uploadBuffers.bytes(of: buffer)[..<Int(block.length)])
            if queuePayload(
                block, bytes: bytes, source: .uploadBuffer(buffer), link: link, now: Instant(nanoseconds: now)
            ) {
                // The buffer now belongs to the link's send; it is released once sent.
                uploadLeases[bufferIndex] = nil
            }
        }
        releaseUploadBuffer(token: token)
        serveUploads()
    }

    private func releaseUploadBuffer(token: UInt64) {
        let bufferIndex = Int(token >> 48)
        guard bufferIndex < uploadLeases.count, let buffer = uploadLeases[bufferIndex] else { return }
        uploadLeases[bufferIndex] = nil
        uploadBuffers.release(buffer)
    }

    /// A block read failed (say, the file was removed under us): refuse the block, keep going.
    private func uploadReadFailed(token: UInt64, block: BlockRange) {
        let index = Int(token & 0xffff_ffff)
        if index < links.count, let link = links[index],
            link.generation == UInt16(truncatingIfNeeded: token >> 32)
        {
            link.readsInFlight -= 1
            link.connection.rejectRequest(block)
        }
        releaseUploadBuffer(token: token)
        serveUploads()
    }

    /// Gives back what a payload held: its upload buffer, or its pin on a cached piece.
    private func releasePayloads(_ payloads: inout [QueuedPayload]) {
        for payload in payloads {
            switch payload.source {
            case .uploadBuffer(let slot): uploadBuffers.release(slot)
            case .cachedPiece(let piece): pieceCache?.unpin(piece)
            }
        }
        payloads.removeAll(keepingCapacity: true)
    }

    // MARK: Sending

    private func flushAllSends() {
        for link in receivesToRearm where !link.closing { armReceive(link) }
        receivesToRearm.removeAll(keepingCapacity: true)
        for case let link? in links where !link.sendInFlight && link.connected && !link.closing {
            startSend(link)
        }
    }

    /// Takes the connection's outbound bytes (and the payloads that go between them) as the next send.
    /// Without payloads it is one plain send; with them, one sendmsg whose ranges alternate between the
    /// outbound bytes and the payloads, which keeps the stream's order without copying a block.
    private func startSend(_ link: PeerLink) {
        guard !link.connection.outbound.isEmpty else { return }
        swap(&link.sending, &link.connection.outbound)
        link.connection.outbound.removeAll(keepingCapacity: true)
        link.sendOffset = 0
        link.sendingVector = !link.payloads.isEmpty
        if link.sendingVector {
            swap(&link.sendingPayloads, &link.payloads)
            let vector =
                link.sendVector ?? SendVector(capacity: 2 * Self.maximumQueuedPayloadsPerLink + 1)
            link.sendVector = vector
            vector.removeAll()
            link.sending.withUnsafeBytes { outbound in
                var from = 0
                for payload in link.sendingPayloads {
                    vector.append(UnsafeRawBufferPointer(rebasing: outbound[from..<payload.position]))
                    vector.append(payload.bytes)
                    from = payload.position
                }
                vector.append(UnsafeRawBufferPointer(rebasing: outbound[from...]))
            }
        }
        enqueueSend(link)
    }

    private func enqueueSend(_ link: PeerLink) {
        let operation: Operation
        if link.sendingVector, let vector = link.sendVector {
            operation = .sendMessage(fd: link.fd, vector: vector)
        } else {
            let bytes = link.sending.withUnsafeBytes {
                UnsafeRawBufferPointer(rebasing: $0[link.sendOffset...])
            }
            operation = .send(fd: link.fd, bytes: bytes)
        }
        do {
            try ring.enqueue(operation, for: link.operationSlot)
            link.sendInFlight = true
        } catch {
            failure = .io(error)
        }
    }

    private func sendCompleted(_ completion: Completion, link: PeerLink, now: UInt64) {
        link.sendInFlight = false
        guard completion.result > 0 else {
            disconnect(link, reason: "send: \(Errno(rawValue: -completion.result))", now: now)
            return
        }
        let sent = Int(completion.result)
        let remaining: Int
        if link.sendingVector, let vector = link.sendVector {
            vector.advance(by: sent)
            remaining = vector.remainingBytes
        } else {
            link.sendOffset += sent
            remaining = link.sending.count - link.sendOffset
        }
        if remaining > 0 {
            enqueueSend(link)
        } else {
            link.sending.removeAll(keepingCapacity: true)
            releasePayloads(&link.sendingPayloads)
            link.sendingVector = false
            startSend(link)
            // Sent blocks free their link's share of the queue: serve more.
            if !link.uploadQueue.isEmpty { serveUploads() }
        }
    }

    // MARK: Timers and endings

    private func runningTick(now: UInt64) {
        restIfIdle(now: now)
        let time = Instant(nanoseconds: now)
        if let retryAt = acceptRetryAt, now >= retryAt {
            acceptRetryAt = nil
            armAccept()
        }
        for case let link? in links where link.connected && !link.closing {
            do {
                try link.connection.timerTick(now: time)
            } catch {
                disconnect(link, reason: "\(error)", now: now)
            }
        }
        actions.removeAll(keepingCapacity: true)
        pipeline.tick(at: Instant(nanoseconds: now), into: &actions)
        perform(actions)
        choker.tick(at: Instant(nanoseconds: now), into: &chokeActions)
        performChokes()
        serveUploads()
        if let trackers {
            if verified.isComplete {
                trackers.downloadCompleted(now: now)
            } else if !links.contains(where: { $0 != nil }) {
                // Nobody to download from: ask again as soon as `min interval` allows.
                trackers.wantMorePeers(now: now)
            }
            trackers.tick(now: now)
            addCandidates(trackers.takePeers())
        }
        connectToCandidates()
    }

    /// A seed without peers for half a minute gives its memory back: the piece buffers (a seed never
    /// assembles a piece), the upload buffers and the cache. Each is made again when needed, so a
    /// torrent at rest costs a few KiB.
    private func restIfIdle(now: UInt64) {
        if links.contains(where: { $0 != nil }) { lastBusy = now }
        guard now - lastBusy >= 30_000_000_000, verified.isComplete, writing.isEmpty, hashesInFlight == 0,
            assembling.isEmpty, recheck == nil
        else { return }
        pieceBufferStorage = nil
        if !uploadLeases.contains(where: { $0 != nil }) { uploadBufferStorage = nil }
        if !pieceCacheRegistered, pieceCache?.isIdle ?? false {
            pieceCache = nil
            uncachedPieces.removeAll()
        }
    }

    private func ban(_ peer: PeerSlot, reason: String, now: UInt64) {
        guard let link = links[Int(peer.value)] else { return }
        if let index = candidates.firstIndex(where: { $0.address == link.address }) {
            candidates[index].banned = true
        }
        disconnect(link, reason: "banned: \(reason)", now: now)
    }

    private func disconnect(_ link: PeerLink, reason: String, now: UInt64) {
        guard !link.closing else { return }
        log("peer \(link.address): \(reason)")
        logTotals(link)
        link.closing = true
        if pipeline.isConnected(link.slot) { pipeline.peerDisconnected(link.slot) }
        if choker.isConnected(link.slot) {
            choker.peerDisconnected(link.slot, at: Instant(nanoseconds: now), into: &chokeActions)
            performChokes()
        }
        if let index = candidates.firstIndex(where: { $0.address == link.address }) {
            candidates[index].connected = false
            candidates[index].failures += 1
            // Back off: 1 s, 2 s, 4 s … up to a minute.
            let delaySeconds = UInt64(min(60, 1 << min(candidates[index].failures - 1, 6)))
            candidates[index].retryAt = now + delaySeconds * 1_000_000_000
        }
        shutdown(link)
        if !link.hasOperationsInFlight { release(link) }
    }

    /// One line per connection with its payload totals (tests tell from these who traded with whom).
    private func logTotals(_ link: PeerLink) {
        let connection = link.connection
        guard connection.downloadedPayloadBytes > 0 || connection.uploadedPayloadBytes > 0 else { return }
        log(
            "peer \(link.address) totals: received \(connection.downloadedPayloadBytes) sent \(connection.uploadedPayloadBytes) payload bytes"
        )
    }

    /// Ends the socket; operations still in flight complete with errors and then the link is released.
    private func shutdown(_ link: PeerLink) {
        Glibc.shutdown(link.fd, Int32(SHUT_RDWR))
    }

    private func release(_ link: PeerLink) {
        let index = Int(link.slot.value)
        guard index < links.count, links[index] === link else { return }
        Glibc.close(link.fd)
        releasePayloads(&link.payloads)
        releasePayloads(&link.sendingPayloads)
        links[index] = nil
        // Every link took one connection from the shared budget when it was made.
        options.sharedConnectionBudget?.release()
    }
}

// MARK: Trackers

extension DownloadSession {
    /// The most peer addresses kept; trackers hand out at most a few hundred per announce.
    static let maximumCandidates = 2000

    /// Starts announcing, if the torrent has trackers and they are wanted. BEP 27: a private torrent's
    /// peers come only from its trackers (and `--peer`); no other source (DHT, PEX, LSD) exists here.
    private func startTrackers() {
        guard options.useTrackers, !metainfo.trackers.isEmpty else { return }
        let totalBytes = UInt64(max(0, metainfo.totalLength))
        trackers = TrackerAnnouncer(
            ring: ring, tenant: tenant, trackers: metainfo.trackers, isPrivate: metainfo.isPrivate,
            infoHash: metainfo.wireInfoHash, peerID: localPeerID,
            port: options.announcedPort ?? boundAddress?.port ?? 0,
            seed: options.seed, extraCAFile: options.trackerCAFile,
            totals: { [unowned self] in
                var verifiedBytes: UInt64 = 0
                for piece in verified.pieces { verifiedBytes += UInt64(geometry.length(of: piece)) }
                return TrackerAnnouncer.Totals(
                    uploadedBytes: UInt64(max(0, uploadedBytes)),
                    downloadedBytes: UInt64(max(0, downloadedBytes)),
                    leftBytes: totalBytes - min(totalBytes, verifiedBytes))
            }, log: log)
        trackers?.start(now: nowNanoseconds, isComplete: verified.isComplete)
        // `started` goes out now, not at the first timer tick.
        trackers?.tick(now: nowNanoseconds)
    }

    /// A tracker's completion; the peers it brought are connected to at once, not at the next tick.
    private func trackerCompleted(_ completion: Completion, now: UInt64) {
        guard let trackers else { return }
        trackers.handle(completion, now: now)
        let peers = trackers.takePeers()
        guard !peers.isEmpty else { return }
        addCandidates(peers)
        connectToCandidates()
    }

    /// Peers from a tracker: new addresses become candidates (ourselves and duplicates excluded).
    private func addCandidates(_ addresses: [SocketAddress]) {
        guard !addresses.isEmpty else { return }
        var known = Set(candidates.map(\.address))
        for address in addresses where candidates.count < Self.maximumCandidates {
            if let boundAddress, address.port == boundAddress.port, address.isLoopbackOrSame(as: boundAddress)
            {
                continue
            }
            if known.insert(address).inserted { candidates.append(PeerCandidate(address: address)) }
        }
    }
}

extension SocketAddress {
    /// Whether this is `other`'s address, or loopback while `other` is a wildcard or loopback address.
    fileprivate func isLoopbackOrSame(as other: SocketAddress) -> Bool {
        if self == other { return true }
        switch (self, other) {
        case (.ipv4(let address, _), .ipv4(let otherAddress, _)):
            return address >> 24 == 127 && (otherAddress == 0 || otherAddress >> 24 == 127)
        default:
            return false
        }
    }
}
