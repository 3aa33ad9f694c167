import Buffers
import Glibc
import Hashing
import Metainfo
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

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
/// trackers are told), closing (every operation on the ring for it completes), and gone. A seed nobody
/// needs may instead rest: it closes and leaves without telling anyone, and a stand-in wakes it
/// (`DownloadSession+Rest.swift`).
///
/// Invariants: a piece has a buffer from the moment its first block arrives until it is written (or
/// fails its hash); a buffer is never released while lent to the hasher or the store; every verified
/// piece is in `verified` only after it was written; the torrent leaves its reactor only once nothing
/// of it is in flight on the ring or the hashers (their memory is its own).
public final class DownloadSession: ReactorTenant {
    static var peerOwner: UInt8 { Reactor.peerOwner }
    static var listenerOwner: UInt8 { Reactor.listenerOwner }
    /// The largest block a peer may ask for (`PieceGeometry.maximumRequestLength`): one upload buffer.
    static let uploadBufferBytes = Int(PieceGeometry.maximumRequestLength)
    static var receiveBufferBytes: Int { Reactor.receiveBufferBytes }
    /// Blocks read or queued unsent per link: enough to fill a fast link, bounded for a slow reader.
    static let maximumQueuedPayloadsPerLink = 64

    public let metainfo: Metainfo
    /// Where the files are under the download folder: the metainfo's paths unless a front end renamed
    /// some (`DownloadOptions.filePaths`).
    let diskLayout: FileLayout
    public internal(set) var options: DownloadOptions
    let geometry: PieceGeometry
    /// Pieces that end in padding, with the blocks before it: only those are asked for.
    let dataBlockCounts: [PieceIndex: Int]
    /// Random per torrent, kept across a rest (see `resume(from:)`).
    var localPeerID: PeerID

    // Set when a reactor takes the torrent.
    unowned(unsafe) var reactor: Reactor!
    var tenant: UInt16 = 0
    var ring: Ring { reactor.ring }
    var hashers: HashPool { reactor.hashers }
    var providedBuffers: ProvidedBufferRing? { reactor.providedBuffers }
    var store: PieceStore!
    /// Piece memory, made at first use and given back once the torrent seeds (see `restIfIdle`).
    var pieceBufferStorage: BufferPool?
    var pieceBuffers: BufferPool {
        if let pieceBufferStorage { return pieceBufferStorage }
        // No more slots than pieces: a torrent of three pieces never holds more than three.
        let pool = BufferPool(slotSizeBytes: metainfo.pieceLength, slotCount: pieceSlotCount)
        pieceBufferStorage = pool
        return pool
    }

    /// No more slots than pieces: a torrent of three pieces never holds more than three.
    var pieceSlotCount: Int {
        max(1, min(metainfo.pieceCount, max(8, options.pieceMemoryBytes / metainfo.pieceLength)))
    }

    /// Where the torrent is in its life (the rules are pure: `TorrentLifecycle`).
    var lifecycle: TorrentLifecycle
    /// Whether trading has begun (the pipeline built, the listener armed, trackers started).
    var trading = false
    /// When the reactor is to tick this torrent next (see `Reactor.schedule`).
    private(set) var tickDeadline: UInt64 = 0
    /// The torrent's own hash jobs (a check's are its own to count).
    var hashesInFlight = 0
    /// The check of the data on disk, until it has nothing in flight.
    var recheck: Recheck?
    /// `findProgress` is under way.
    var findingProgress = false
    /// A check waiting for the reactor's turn (`Reactor.queueCheck`): the pieces to check (nil: all).
    var pendingCheck: [PieceIndex]??
    /// The torrent holds one of the reactor's check turns, counted there as this many bytes.
    var holdsCheckTurn = false
    var checkTurnCostBytes = 0
    /// Verified pieces the resume data on disk vouches for (nil: unknown, save at the next chance):
    /// unchanged data is not written again.
    var resumeSavedPieceCount: Int?
    /// What the latest save asked for vouches for, and how many saves are on their way.
    var resumeSavingPieceCount: Int?
    var resumeSavesInFlight = 0
    /// A save in flight describes pieces since forgotten (`forgetPiecesOfReplacedFile`): save again
    /// once it ends.
    var resumeSaveOutdated = false
    /// Called on the reactor about once a second (every 250 ms while checking).
    var statusHandler: ((DownloadStatus) -> Void)?
    /// Called on the reactor once, when the torrent has left it.
    var endHandler: ((Result<DownloadOutcome, DownloadError>) -> Void)?
    /// Called on the reactor instead of `endHandler` when a seed left it to rest (`restIfUnneeded`):
    /// whoever set it places a stand-in that wakes the torrent. Without it the torrent never rests.
    var restHandler: ((Reactor, RestCarry) -> Void)?
    /// The engine's name for this session, by which commands find it on its reactor.
    var hostKey: HostKey?
    var lastStatus: UInt64 = 0
    /// Bytes checked so far while checking.
    var checkedBytes: Int64 = 0

    var pipeline: RequestPipeline
    var verified: PieceSet
    /// What the user wants of each file, and the pieces that follow (nil: every piece); see
    /// `DownloadSession+FilePriorities.swift`.
    var filePriorities: FilePriorities
    var wantedPieces: PieceSet?
    /// With `options.streamWindowBytes`: the pieces a player needs next, raised above the rest.
    var streamingWindow: StreamingWindow?
    var links: [PeerLink?] = []
    var linkGenerations: [UInt16] = []
    /// The info dictionary, served to peers that ask (nil for a private torrent); made at first use,
    /// each connection's allowance is a copy that shares its bytes.
    lazy var metadataServer: MetadataServer? =
        metainfo.isPrivate ? nil : MetadataServer(infoDictionary: Array(metainfo.infoBytes))
    /// `localExtensionHandshake()`, encoded once.
    var extensionHandshakeBytes: [UInt8]?
    /// Known peers: whom to connect to, back-offs and bans.
    var peerDirectory = PeerDirectory<SocketAddress>()
    /// The hosts of banned peers (port 0): neither accepted nor dialled again, on any port.
    var bannedHosts: Set<SocketAddress> = []
    /// Pieces being assembled or hashed or written: their buffer.
    var assembling: [PieceIndex: BufferSlot] = [:]
    /// The peer whose bytes of a block go into its buffer while its message arrives (`claimBlock`).
    var blockWriters: [BlockRange: PeerSlot] = [:]
    var writing: Set<PieceIndex> = []
    var actions: [RequestAction] = []
    var pendingEvents: [PendingEvent] = []
    /// The trees of v2 files whose hashes peers asked for (BEP 52), by file root.
    var hashTrees: [SHA256Digest: [[SHA256Digest]]] = [:]
    /// The files with a piece layer, by root: built at the first hash request.
    var layerFilesByRoot: [SHA256Digest: Int]?
    /// Links whose receive waits for a free receive buffer.
    var receivesToRearm: [PeerLink] = []
    var downloadedBytes: Int64 = 0
    var rate = RateMeter(window: .seconds(5))
    var failure: DownloadError?
    var flushRequested = false
    var flushed = false
    var lastResumeSaveNanoseconds: UInt64 = 0
    /// When `checkFilesInPlace` last looked.
    var lastFilesInPlaceCheckNanoseconds: UInt64 = 0
    var droppedBlocks = 0
    var completionSaved = false

    // Uploading.
    var choker: Choker
    var chokeActions: [ChokeAction] = []
    /// Upload buffers, made at the first block read and given back when the torrent rests.
    var uploadBufferStorage: BufferPool?
    var uploadBuffers: BufferPool {
        if let uploadBufferStorage { return uploadBufferStorage }
        let pool = BufferPool(
            slotSizeBytes: Self.uploadBufferBytes, slotCount: max(1, options.uploadBufferCount))
        uploadBufferStorage = pool
        uploadLeases = Array(repeating: nil, count: pool.slotCount)
        return pool
    }
    /// The lease of each upload buffer with a read in flight, by buffer index.
    var uploadLeases: [BufferSlot?] = []
    /// Whole pieces read for uploading, shared by all peers: made at the first request served, given
    /// back when the torrent rests (nil then, and when pieces are too large for the budget).
    var pieceCache: PieceCache?
    /// When the torrent last had a peer (for `restIfIdle`).
    var lastBusy: UInt64 = 0
    /// When trading began (a seed rests only after as long without a peer, see `restIfUnneeded`).
    var tradingSince: UInt64 = 0
    /// Pieces whose whole-piece read failed: served block by block.
    var uncachedPieces: Set<PieceIndex> = []
    /// The link `serveUploads` looked at last (it serves links in turn).
    var uploadCursor = 0
    /// The upload limit held requests back: the reactor wakes when it allows again.
    var uploadThrottled = false
    var uploadedBytes: Int64 = 0
    var uploadRate = RateMeter(window: .seconds(5))
    /// Replaced once, at `attach`, on a simulated reactor (its limits then run on its clock).
    private(set) var uploadLimiter: RateLimiter
    private(set) var downloadLimiter: RateLimiter
    /// Requests were held back by the download limit: top every queue up once it allows again.
    var downloadThrottled = false
    /// When seeding began (for `seedTimeLimitSeconds`).
    var seedingSince: UInt64?
    /// When seeding began, for a session that takes over from one that rested (see `resume(from:)`).
    var restedSeedingSince: UInt64?
    /// The announcer a rest put away (see `restIfUnneeded`), and the one a session that takes over
    /// resumes (`startTrackers`).
    var restingTrackers: TrackerAnnouncer.Memory?
    var restedTrackers: TrackerAnnouncer.Memory?
    /// Finishing: requests are no longer served (what is queued is still sent).
    var stopping = false
    /// Sockets taken from `options.incomingInbox`, reused.
    var routedDescriptors: [RoutedConnection] = []
    var listenerFD: Int32 = -1
    /// When to arm accepting again after it failed (nil: armed, or no listener).
    var acceptRetryAt: UInt64?
    /// An accept on `listenerFD` is on the ring.
    var acceptArmed = false
    var loggedAcceptErrors: Set<Errno> = []
    /// Incoming connections refused since the last was logged, and why (see `refuseIncoming`).
    var unsaidRefusals = 0
    var lastRefusalReason = ""
    var lastRefusalLogNanoseconds: UInt64 = 0
    static let acceptRetryNanoseconds: UInt64 = 250_000_000
    var boundAddress: SocketAddress?
    var log: (String) -> Void
    /// The first steps of this start, until its first piece is written and the timeline logged.
    var startTimeline: StartTimeline?
    /// Announces to the torrent's trackers; nil when it has none or they are turned off.
    var trackers: TrackerAnnouncer?
    /// When a client last had the trackers announce at once (`reannounce`), to refuse another soon after.
    var lastReannounceNanoseconds: UInt64?
    /// Subscribed to the engine's DHT for this torrent.
    var dhtSubscribed = false
    /// The web seeds (BEP 19) in use; nil when there are none.
    var webSeedPool: WebSeedPool?
    /// When `exchangePeers` looks for PEX messages due next.
    var nextPeerExchangeCheck: UInt64 = 0

    /// What a receive produced, kept until the connection has finished parsing.
    enum PendingEvent {
        case handshake(extensionProtocol: Bool)
        case extensionHandshake([UInt8])
        case metadataMessage([UInt8])
        case peerExchangeMessage([UInt8])
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
        case hashRequest(HashRequest)
    }

    /// What we tell peers in the BEP 10 handshake.
    static let extensionHandshake = ExtensionHandshake(
        clientName: "Potluck \(potluckVersion)",
        requestQueueLength: PeerConnectionOptions().maximumIncomingRequests)

    public init(metainfo: Metainfo, options: DownloadOptions, log: @escaping (String) -> Void = { _ in }) {
        self.metainfo = metainfo
        self.options = options
        self.log = log
        diskLayout = metainfo.layout.renamed(to: options.filePaths)
        lifecycle = TorrentLifecycle(seedsWhenComplete: options.seedWhenComplete)
        geometry = metainfo.geometry
        dataBlockCounts = metainfo.layout.dataBlockCounts()
        localPeerID = Self.makePeerID()
        verified = PieceSet(pieceCount: metainfo.pieceCount)
        // The options' choice, if any, from the start: it decides which empty files `setUp` creates.
        filePriorities =
            options.filePriorities.flatMap { $0.count == metainfo.files.count ? FilePriorities($0) : nil }
            ?? FilePriorities(fileCount: metainfo.files.count)
        // A stand-in until trading starts (`startTrading` makes the real one from what the check
        // found): as if every piece were here, it asks for nothing and holds no picker buckets, which
        // are 56 KiB per torrent (thousands wait for their check at a first start).
        pipeline = RequestPipeline(
            geometry: metainfo.geometry, have: PieceSet(pieceCount: metainfo.pieceCount, full: true),
            seed: options.seed, dataBlockCounts: dataBlockCounts)
        peerDirectory.add(options.peers)
        var chokerConfiguration = Choker.Configuration()
        chokerConfiguration.regularUnchokeSlots = max(0, options.uploadSlots)
        choker = Choker(configuration: chokerConfiguration, seed: options.seed)
        (uploadLimiter, downloadLimiter) = Self.limiters(options, clock: nil)
    }

    /// The torrent's own limits, within the process-wide ones; `clock` nil: the real one.
    static func limiters(
        _ options: DownloadOptions, clock: (@Sendable () -> Instant)?
    ) -> (upload: RateLimiter, download: RateLimiter) {
        func limiter(_ rate: Int, within parent: RateLimiter?) -> RateLimiter {
            let limiter =
                clock.map { RateLimiter(rateBytesPerSecond: rate, within: parent, clock: $0) }
                ?? RateLimiter(rateBytesPerSecond: rate, within: parent)
            limiter.setFollowsParent(options.honorsSharedRates)
            return limiter
        }
        return (
            limiter(options.maximumUploadRateBytesPerSecond, within: options.sharedUploadLimiter),
            limiter(options.maximumDownloadRateBytesPerSecond, within: options.sharedDownloadLimiter)
        )
    }

    /// `-PO0001-` and twelve random bytes: the client prefix other peers and trackers recognise.
    static func makePeerID() -> PeerID {
        var bytes = Array("-PO0001-".utf8)
        for _ in 0..<12 { bytes.append(UInt8.random(in: UInt8(ascii: "0")...UInt8(ascii: "z"))) }
        return PeerID(bytes)!
    }

    var nowNanoseconds: UInt64 { reactor.now }

    var resumePath: String {
        options.resumeDataPath(infoHash: metainfo.wireInfoHash)
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
        case .rested: nil
        }
    }

    // MARK: Driven by the reactor

    /// Whether the torrent has left its reactor (nothing of it is in flight any more).
    var hasLeftReactor: Bool { lifecycle.ending != nil }

    /// Whether blocks arrived lately (the reactor batches completions then): not before the first ones,
    /// nor once they stop for a while.
    func isReceivingBlocks(now: UInt64) -> Bool {
        guard lifecycle.stage == .downloading, let last = lastBlockNanoseconds else { return false }
        return now &- last < Self.blockFlowNanoseconds
    }

    /// When a block last arrived.
    var lastBlockNanoseconds: UInt64?
    static let blockFlowNanoseconds: UInt64 = 100_000_000

    var isTrading: Bool { lifecycle.stage == .downloading || lifecycle.stage == .seeding }

    /// Taken by `reactor` as `tenant`: sets up storage and starts checking or trading.
    func attach(to reactor: Reactor, tenant: UInt16) {
        self.reactor = reactor
        self.tenant = tenant
        if let clock = reactor.simulatedClock {
            (uploadLimiter, downloadLimiter) = Self.limiters(options, clock: clock)
        }
        options.incomingInbox?.attach(reactor.doorbell, tenant: tenant)
        let now = nowNanoseconds
        startTimeline = StartTimeline(start: now)
        do throws(DownloadError) {
            try setUp()
            // What is on disk is found first (off the reactor), then checked if need be.
            advance(.started(needsCheck: true, isComplete: false), now: now)
            findProgress()
        } catch {
            fail(error)
        }
        scheduleTick(now: now)
    }

    /// Notes a first step of this start; logs the timeline once the first piece is written.
    func noteStart(_ step: StartTimeline.Step, now: UInt64) {
        guard startTimeline != nil, let line = startTimeline!.record(step, at: now) else { return }
        log(line)
        startTimeline = nil
    }

    /// Asks the torrent to stop cleanly: writes land, resume data is saved, trackers are told.
    func stop() {
        let now = nowNanoseconds
        advance(.stopRequested, now: now)
        if lifecycle.stage == .checking {
            recheck?.stop()
            pendingCheck = nil
            checkProgressed([], now: now)
        }
    }

    /// Moves the torrent along and does what its new stage means.
    func advance(_ event: TorrentLifecycle.Event, now: UInt64) {
        guard let stage = lifecycle.handle(event, now: Instant(nanoseconds: now)) else { return }
        switch stage {
        case .idle, .checking:
            break
        case .downloading:
            if downloadFolderIsWritable() { startTrading(now: now) }
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
            stopDHT()
            stopLocalDiscovery()
            recheck?.stop()
            closeLinks()
            trackers?.beginShutdown(now: now, completed: ending == .completed)
            trackers?.tick(now: now)
        case .closing(let ending):
            // A resting seed stays known to the DHT and local discovery under the same key.
            if ending != .rested {
                stopDHT()
                stopLocalDiscovery()
            }
            // Complete before trading began: nothing to tell anyone, but the check's findings are kept.
            if ending == .completed && !trading { saveResumeData() }
            closeLinks()
            stopListening()
            // A resting seed's trackers were not stopped (their memory goes to its stand-in), and
            // their UDP receives stay armed until closed.
            trackers?.close()
        case .gone:
            releaseCheckTurn()
            if listenerFD >= 0 {
                Glibc.close(listenerFD)
                listenerFD = -1
            }
            if lifecycle.ending == .rested {
                // Its stand-in takes the inbox over: peers that arrive wake the torrent.
                restHandler?(reactor, restCarry)
            } else {
                options.incomingInbox?.close()
                if let outcome { endHandler?(outcome) }
            }
        }
        reactor.touch(tenant)
    }

    func setUp() throws(DownloadError) {
        if mkdir(options.downloadDirectory, 0o755) != 0 && errno != EEXIST {
            throw .storage(
                StorageError(.open, path: options.downloadDirectory, reason: .system(Errno(rawValue: errno))))
        }
        do {
            store = try PieceStore(
                layout: diskLayout, downloadDirectory: options.downloadDirectory, ring: ring,
                options: PieceStore.Options(
                    preallocate: options.preallocateFiles, directWrites: options.directWrites),
                tenant: tenant)
            store.setWantedFiles(filePriorities.wantedFiles(in: metainfo.layout))
            // Empty files get no piece, so no write would ever create them.
            try store.createEmptyFiles()
            // Until there is something to read or write (a torrent may rest for days), no descriptor.
            store.closeIdleFiles()
        } catch {
            throw .storage(error)
        }
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
    func submitHash(_ slot: BufferSlot, length: Int, kind: HashJobKind, piece: PieceIndex) {
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

    func serviceStage(now: UInt64) {
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
            let linksOpen =
                links.contains { $0 != nil } || webSeedPool?.hasOperationsInFlight == true || acceptArmed
                || trackers?.hasOperationsInFlight == true
            let checking = recheck?.hasWorkInFlight ?? false
            let idle =
                hashesInFlight == 0 && (store?.operationsInFlight ?? 0) == 0 && resumeSavesInFlight == 0
                && !findingProgress
            if !linksOpen && !checking && idle {
                advance(.drained, now: now)
            }
        }
    }

    func serviceTrading(now: UInt64) {
        if hasEverythingWanted && writing.isEmpty {
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
            if lifecycle.stage == .downloading { checkFilesInPlace(now: now) }
            // At rest the next tick is far off: report now, so the last word is not a stale rate.
            if now - lastStatus >= 1_000_000_000 || isAtRest {
                reportStatus(now: now)
                store.dropMappedPages()
            }
            if now - lastResumeSaveNanoseconds >= UInt64(options.resumeSaveIntervalSeconds) * 1_000_000_000 {
                lastResumeSaveNanoseconds = now
                saveResumeData()
            }
            restIfUnneeded(now: now)
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
    func scheduleTick(now: UInt64) {
        if lifecycle.ending != nil { return }
        var interval: UInt64 = 250_000_000
        if isAtRest { interval = trackers == nil ? 30_000_000_000 : 5_000_000_000 }
        if let restAt = restDeadline, isAtRest {
            interval = min(interval, restAt > now ? restAt - now : 1_000_000)
        }
        if let limit = options.seedTimeLimitSeconds, let since = seedingSince {
            let end = since + UInt64(max(0, limit)) * 1_000_000_000
            interval = min(interval, end > now ? end - now : 1_000_000)
        }
        tickDeadline = now + interval
        reactor.schedule(tenant, at: tickDeadline)
    }

    var isAtRest: Bool {
        guard isTrading, acceptRetryAt == nil, !hasWebSeedWork else { return false }
        return !links.contains { $0 != nil } && (hasEverythingWanted || peerDirectory.isEmpty)
    }

    /// A rate limit held work back: be serviced again when it allows.
    func scheduleThrottleWake(now: UInt64) {
        var wait: UInt64 = 100_000_000
        if uploadThrottled { wait = min(wait, uploadLimiter.nanosecondsUntilAllowed()) }
        if downloadThrottled { wait = min(wait, downloadLimiter.nanosecondsUntilAllowed()) }
        let deadline = now + max(wait, 1_000_000)
        if deadline < tickDeadline {
            tickDeadline = deadline
            reactor.schedule(tenant, at: deadline)
        }
    }

    func fail(_ error: DownloadError) {
        if failure == nil { failure = error }
        reactor.touch(tenant)
    }

    /// Why seeding should stop now (`seedRatioLimit`, `seedTimeLimitSeconds`), or nil.
    func seedLimitReached(now: UInt64) -> String? {
        if let ratio = options.seedRatioLimit,
            Double(uploadedBytes) >= ratio * Double(max(1, metainfo.totalLength))
        {
            return "uploaded \(uploadedBytes) bytes, ratio \(ratio) reached"
        }
        if let limit = options.seedTimeLimitSeconds, let since = seedingSince,
            now >= since + UInt64(max(0, limit)) * 1_000_000_000
        {
            return "seeded for \(limit) s"
        }
        return nil
    }

    /// Data on disk is known: start trading (once).
    func startTrading(now: UInt64) {
        guard !trading else { return }
        trading = true
        pipeline = RequestPipeline(
            geometry: geometry, have: verified, seed: options.seed, dataBlockCounts: dataBlockCounts)
        actions.removeAll(keepingCapacity: true)
        applySelectionToPicker()
        limitPiecesToFreeBuffers(now: now)
        lastResumeSaveNanoseconds = now
        tradingSince = now
        armAccept()
        startTrackers()
        startDHT()
        startLocalDiscovery()
        startWebSeeds(now: now)
        connectToCandidates()
        reportStatus(now: now)
    }

    /// Everything is here: flush, save resume data once it is on disk, and give every slot to uploads.
    func becomeSeed(now: UInt64) {
        guard !completionSaved else { return }
        completionSaved = true
        seedingSince = restedSeedingSince ?? now
        if !flushRequested {
            flushRequested = true
            store.flush()
        }
        chokeActions.removeAll(keepingCapacity: true)
        choker.setSeeding(true, at: Instant(nanoseconds: now), into: &chokeActions)
        performChokes()
        if restedSeedingSince == nil { log("seeding \(metainfo.name)") }
        reportStatus(now: now)
    }

    /// Shuts every connection (without the disconnect bookkeeping: the torrent is leaving); each link
    /// is released once its operations have completed.
    func closeLinks() {
        closeWebSeeds()
        for case let link? in links {
            if !link.closing { logTotals(link) }
            link.closing = true
            if link.connectInFlight { cancel(.connect, of: link) }
            shutdown(link)
            if !link.hasOperationsInFlight { release(link) }
        }
    }

    func reportStatus(now: UInt64) {
        lastStatus = now
        statusHandler?(currentStatus(phase: hasEverythingWanted ? .seeding : .downloading, now: now))
    }

    func currentStatus(phase: DownloadStatus.Phase, now: UInt64) -> DownloadStatus {
        var verifiedBytes: Int64 = 0
        for piece in verified.pieces { verifiedBytes += Int64(geometry.length(of: piece)) }
        var status = DownloadStatus(
            phase: phase, verifiedPieces: verified.count, pieceCount: metainfo.pieceCount,
            verifiedBytes: verifiedBytes, totalBytes: metainfo.totalLength,
            downloadedPayloadBytes: downloadedBytes,
            downloadRateBytesPerSecond: rate.rateBytesPerSecond(at: Instant(nanoseconds: now)),
            uploadRateBytesPerSecond: uploadRate.rateBytesPerSecond(at: Instant(nanoseconds: now)),
            connectedPeers: links.reduce(0) { $0 + ($1?.connected == true ? 1 : 0) },
            knownPeers: peerDirectory.count, checkedBytes: 0, uploadedPayloadBytes: uploadedBytes,
            listenAddress: boundAddress, trackerState: trackers?.state)
        (status.wantedBytes, status.verifiedWantedBytes) = wantedProgressBytes()
        if !verified.isComplete { status.verified = verified }
        return status
    }

    // MARK: Timers and endings

    func runningTick(now: UInt64) {
        restIfIdle(now: now)
        sumUpRefusals(now: now)
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
            if hasEverythingWanted {
                trackers.downloadCompleted(now: now)
            } else if !links.contains(where: { $0 != nil }) {
                // Nobody to download from: ask again as soon as `min interval` allows.
                trackers.wantMorePeers(now: now)
            }
            trackers.tick(now: now)
            addCandidates(trackers.takePeers())
        }
        tickWebSeeds(now: now)
        exchangePeers(now: now)
        connectToCandidates()
    }

    /// A seed without peers for half a minute gives its memory back: the piece buffers (a seed never
    /// assembles a piece), the upload buffers and the cache. Each is made again when needed, so a
    /// torrent at rest costs a few KiB.
    func restIfIdle(now: UInt64) {
        if links.contains(where: { $0 != nil }) { lastBusy = now }
        guard now - lastBusy >= 30_000_000_000, hasEverythingWanted, writing.isEmpty, hashesInFlight == 0,
            assembling.isEmpty, recheck == nil
        else { return }
        pieceBufferStorage = nil
        if !uploadLeases.contains(where: { $0 != nil }) {
            uploadBufferStorage = nil
            uploadLeases = []
        }
        store.closeIdleFiles()
        if pieceCache?.isIdle ?? false {
            pieceCache = nil
            uncachedPieces.removeAll()
        }
    }
}
