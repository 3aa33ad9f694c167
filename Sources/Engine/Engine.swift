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
    /// Start each torrent's log lines with its name (off for a front end with one torrent).
    public var namesTorrentsInLog = true
    /// The DHT (nil: none). Its socket takes the listening port when it asks for port 0.
    public var dht: DHTOptions?
    /// Local Service Discovery (BEP 14): find peers on the LAN by multicast, and be found.
    public var localDiscovery = false
    /// The IPv4 address whose interface local discovery joins and announces on (default: the
    /// listening address; a wildcard one: the interface the routing table picks).
    public var localDiscoveryAddress: SocketAddress?

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
    /// Its own limits as last set; a paused torrent starts again with them.
    public var limits: TorrentLimits
    /// While a magnet link's metadata is being fetched: how that goes.
    public var metadataFetch: MetadataFetchStatus?
    /// Whether its metainfo is known (always, except for a magnet link before its metadata arrives).
    public var hasMetadata: Bool
    /// When a magnet link's metadata arrived (nil for a torrent added with its metainfo).
    public var metadataReceivedAt: ContinuousClock.Instant?

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

    public var description: String {
        switch self {
        case .duplicate(let id): "the torrent is already added (\(id))"
        case .unknownTorrent(let id): "no torrent \(id)"
        case .shuttingDown: "the engine is shutting down"
        case .startFailed(let error): "\(error)"
        case .unsupportedMagnet(let reason): "cannot download this magnet link: \(reason)"
        case .metadataNotYetKnown(let id): "the files of \(id) are not known until its metadata arrives"
        case .threads(let error):
            "cannot start a reactor thread: \(error.errno); the thread limit is reached (`ulimit -u`, a pids "
                + "cgroup, kernel.threads-max)"
        }
    }
}

/// One process's BitTorrent engine: reactor threads that host every torrent, one listening port
/// routed to them, and the limits they share. Front ends (`download`, `seed`, the daemon) add
/// torrents, pause, resume and remove them, read snapshots, and follow `events`.
///
/// Every method may be called from any thread; each turns into a command on the reactor that owns the
/// torrent. A torrent is placed on the reactor hosting the fewest.
public final class Engine: Sendable {
    /// Where incoming peers are accepted, when listening.
    public let boundAddress: SocketAddress?
    /// Torrents added, ended and removed, in order.
    public let events: AsyncStream<EngineEvent>

    private struct Record {
        let id: TorrentID
        /// Nil for a magnet link until its metadata arrives.
        var metainfo: Metainfo?
        /// The link a torrent was added by, if it was.
        var magnet: MagnetLink?
        let infoHash: InfoHash
        var options: DownloadOptions
        var reactor: Int
        var activity: TorrentActivity = .starting
        var status: DownloadStatus?
        var metadataFetch: MetadataFetchStatus?
        var metadataReceivedAt: ContinuousClock.Instant?
        var statusReports = 0
        var ended: Result<DownloadOutcome, DownloadError>?
        var failure: DownloadError? {
            if case .failure(let error) = ended { return error }
            return nil
        }
        /// Placed on its reactor and not yet ended.
        var live = false
        var removing = false
        /// Bumped at each start, so the commands and reports of an earlier run are told apart.
        var run = 0

        var name: String { metainfo?.name ?? magnet?.displayName ?? infoHash.hex }
    }

    /// The records, with running totals kept as each one changes: a summary over thousands of torrents,
    /// asked for several times a second, costs nothing per torrent.
    private struct RecordTable {
        /// Boxed: a dictionary keeps spare room, which for records of about 750 bytes each was half of
        /// what the engine held per torrent at rest.
        fileprivate final class RecordBox {
            var record: Record
            init(_ record: Record) { self.record = record }
        }

        private var records: [TorrentID: RecordBox] = [:]
        private var totals = EngineSummary()
        /// Failed torrents' reports, for the summary's first failure (few, unlike the torrents).
        private var failures: [TorrentID: (report: String, exhausts: Bool)] = [:]

        var values: [Record] { records.values.map(\.record) }
        var liveCount: Int { totals.live }

        subscript(id: TorrentID) -> Record? {
            get { records[id]?.record }
            set {
                if let box = records[id] {
                    count(box.record, sign: -1)
                    if let newValue { box.record = newValue } else { records[id] = nil }
                } else if let newValue {
                    records[id] = RecordBox(newValue)
                }
                if let newValue { count(newValue, sign: 1) }
            }
        }

        mutating func removeValue(forKey id: TorrentID) -> Record? {
            let record = records[id]?.record
            self[id] = nil
            return record
        }

        var summary: EngineSummary {
            var summary = totals
            // Sums of rates that went up and down may be a hair below zero.
            summary.uploadRateBytesPerSecond = max(0, summary.uploadRateBytesPerSecond)
            summary.downloadRateBytesPerSecond = max(0, summary.downloadRateBytesPerSecond)
            if let first = failures.min(by: { $0.key.value < $1.key.value }) {
                summary.firstFailure = first.value.report
            }
            summary.exhaustedProcessResources = failures.values.contains { $0.exhausts }
            return summary
        }

        private mutating func count(_ record: Record, sign: Int) {
            totals.torrents += sign
            if record.live { totals.live += sign }
            if let failure = record.failure {
                totals.failed += sign
                failures[record.id] =
                    sign > 0
                    ? ("\(record.name): \(failure)", failure.exhaustsProcessResources) : nil
            }
            guard let status = record.status else { return }
            totals.uploadedPayloadBytes += Int64(sign) * status.uploadedPayloadBytes
            totals.downloadedPayloadBytes += Int64(sign) * status.downloadedPayloadBytes
            totals.uploadRateBytesPerSecond += Double(sign) * status.uploadRateBytesPerSecond
            totals.downloadRateBytesPerSecond += Double(sign) * status.downloadRateBytesPerSecond
            totals.connectedPeers += sign * status.connectedPeers
        }
    }

    private struct State {
        var records = RecordTable()
        var byInfoHash: [InfoHash: TorrentID] = [:]
        var nextID = 1
        var hosted: [Int]
        var shuttingDown = false
    }

    private let state: Mutex<State>
    private let inboxes: [ReactorInbox]
    private let threads: [JoinableThread]
    /// Where the router on the first reactor finds each torrent's inbox (nil: not listening).
    private let router: RouterDirectory?
    private let stopRequested = StopFlag()
    /// Reactors whose loop failed (their ring stopped working): their torrents end with the error.
    private let lostReactors = LostReactors()
    private let continuation: AsyncStream<EngineEvent>.Continuation
    private let connections: ConnectionBudget
    private let uploadLimiter: RateLimiter
    private let downloadLimiter: RateLimiter
    private let log: @Sendable (String) -> Void
    private let namesTorrentsInLog: Bool
    /// How torrents reach the DHT (nil: no DHT).
    public let dht: DHTHandle?
    private let dhtStatePath: String?
    /// How torrents reach Local Service Discovery (nil: off, or its socket could not be had).
    public let localDiscovery: LocalDiscoveryHandle?

    /// Starts the reactor threads (each creates its ring on itself) and the router.
    public init(options: EngineOptions = EngineOptions()) throws(EngineError) {
        let reactorCount = max(1, options.reactors)
        log = options.log
        namesTorrentsInLog = options.namesTorrentsInLog
        connections = ConnectionBudget(limit: options.maximumConnections)
        uploadLimiter = RateLimiter(rateBytesPerSecond: options.maximumUploadRateBytesPerSecond)
        downloadLimiter = RateLimiter(rateBytesPerSecond: options.maximumDownloadRateBytesPerSecond)
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
        state = Mutex(State(hosted: Array(repeating: 0, count: reactorCount)))
        // The listener is made here, so that a port in use fails `init` and the bound port is known.
        var listenerFD: Int32 = -1
        if let listenAddress = options.listenAddress {
            do {
                listenerFD = try Socket.listenTCP(on: listenAddress)
                boundAddress = try Socket.localAddress(of: listenerFD)
            } catch {
                if listenerFD >= 0 { Glibc.close(listenerFD) }
                throw .startFailed(.listen(error))
            }
            router = RouterDirectory()
        } else {
            boundAddress = nil
            router = nil
        }

        var reactorOptions = ReactorOptions()
        reactorOptions.disabledRingFeatures = options.disabledRingFeatures
        // The cores are shared by the reactors and the hashing workers: together about one per core.
        reactorOptions.hashThreads = max(1, HashPool.coreCount / reactorCount)
        let started = ReactorStartup(count: reactorCount)
        let lost = lostReactors
        let stop = stopRequested
        var threads: [JoinableThread] = []
        for index in 0..<reactorCount {
            do throws(SyscallError) {
                threads.append(
                    try JoinableThread { [reactorOptions] in
                        let reactor: Reactor
                        do throws(DownloadError) {
                            reactor = try Reactor(options: reactorOptions)
                        } catch {
                            started.report(index, .failure(error))
                            return
                        }
                        started.report(index, .success(reactor.doorbell))
                        do throws(DownloadError) {
                            try reactor.run(
                                shouldStop: { stop.isSet },
                                until: { stop.isSet && reactor.tenantCount == 0 })
                        } catch {
                            options.log("reactor \(index) stopped: \(error)")
                            lost.record(index, error)
                        }
                    })
            } catch {
                stopRequested.set()
                started.waitForReports(threads.count)
                started.wakeStarted()
                for thread in threads { thread.join() }
                if listenerFD >= 0 { Glibc.close(listenerFD) }
                throw .threads(error)
            }
        }
        var inboxes: [ReactorInbox] = []
        for result in started.wait() {
            switch result {
            case .success(let inbox): inboxes.append(inbox)
            case .failure(let error):
                stopRequested.set()
                started.wakeStarted()
                for thread in threads { thread.join() }
                if listenerFD >= 0 { Glibc.close(listenerFD) }
                throw .startFailed(error)
            }
        }
        self.inboxes = inboxes
        self.threads = threads
        dhtStatePath = options.dht?.statePath
        if let dhtOptions = options.dht {
            dht = Self.startDHT(dhtOptions, listening: boundAddress, on: inboxes[0], log: options.log)
        } else {
            dht = nil
        }
        localDiscovery =
            options.localDiscovery
            ? Self.startLocalDiscovery(
                listening: options.localDiscoveryAddress ?? boundAddress, on: inboxes[0], log: options.log)
            : nil
        if let router {
            // The first reactor accepts and routes every torrent's peers on its ring.
            let log = options.log
            inboxes[0].submit { [listenerFD] reactor in
                reactor.startRouting(listenerFD: listenerFD, directory: router, log: log)
            }
        }
    }

    /// Binds the DHT's socket and places its node on the first reactor; the saved table is loaded here
    /// and the routers' names are resolved in the background. Nil (logged) when the socket cannot be had.
    private static func startDHT(
        _ options: DHTOptions, listening: SocketAddress?, on inbox: ReactorInbox,
        log: @escaping @Sendable (String) -> Void
    ) -> DHTHandle? {
        var address = options.bindAddress
        if address.port == 0, let listening { address = address.with(port: listening.port) }
        let fd: Int32
        do {
            fd = try Socket.bindUDP(on: address)
        } catch {
            do {
                // The listening port is taken for UDP: any port will do for the DHT.
                fd = try Socket.bindUDP(on: address.with(port: 0))
            } catch {
                log("dht: off: \(error)")
                return nil
            }
        }
        guard let bound = try? Socket.localAddress(of: fd) else {
            Glibc.close(fd)
            return nil
        }
        let saved = options.statePath.flatMap { path in
            Self.smallFile(at: path).flatMap { try? DHTSavedState(decoding: $0) }
        }
        var generator = SystemRandomNumberGenerator()
        let id = saved?.id ?? NodeID((0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) })!
        let configuration = options.configuration
        let handle = DHTHandle(inbox: inbox, boundAddress: bound)
        // Tokens and transaction ids come from this: it must not be predictable.
        let seed = generator.next()
        inbox.submit { reactor in
            let node = DHTNode(
                id: id, configuration: configuration, random: SeededRandom(seed: seed),
                now: Instant(nanoseconds: reactor.now))
            let service = DHTService(node: node, fd: fd, log: log)
            if let saved { service.addSavedNodes(saved.nodes) }
            if !reactor.host(service) { Glibc.close(fd) }
        }
        log("dht: on \(bound), \(saved?.nodes.count ?? 0) nodes kept from the last run")
        let routers = options.bootstrap
        DispatchQueue.global().async {
            var endpoints: [SocketAddress] = []
            for router in routers {
                guard let colon = router.lastIndex(of: ":"),
                    let port = UInt16(router[router.index(after: colon)...])
                else {
                    log("dht: bootstrap \(router) is not HOST:PORT")
                    continue
                }
                let host = String(router[..<colon].filter { $0 != "[" && $0 != "]" })
                if let numeric = SocketAddress(host: host, port: port) {
                    endpoints.append(numeric)
                } else if case .resolved(let resolved) = HostResolver.resolve(host) {
                    endpoints.append(resolved.with(port: port))
                } else {
                    log("dht: bootstrap \(router) does not resolve")
                }
            }
            inbox.submit { [endpoints] reactor in reactor.dht?.addBootstrap(endpoints) }
        }
        return handle
    }

    /// Reactor threads (for tests and reports).
    public var reactorCount: Int { inboxes.count }

    // MARK: Torrents

    /// Adds a torrent and starts it (checking its data, then downloading or seeding as `options` say).
    /// The engine's listener, limits and connection budget apply; `options.listenAddress` is for a
    /// torrent that wants a port of its own.
    @discardableResult
    public func add(_ metainfo: Metainfo, options: DownloadOptions) throws(EngineError) -> TorrentID {
        let options = shared(options)
        let id: TorrentID = try state.withLock { (state) throws(EngineError) -> TorrentID in
            guard !state.shuttingDown else { throw .shuttingDown }
            if let existing = state.byInfoHash[metainfo.wireInfoHash] { throw .duplicate(existing) }
            let id = TorrentID(value: state.nextID)
            state.nextID += 1
            let reactor = state.hosted.indices.min { state.hosted[$0] < state.hosted[$1] }!
            state.hosted[reactor] += 1
            state.records[id] = Record(
                id: id, metainfo: metainfo, infoHash: metainfo.wireInfoHash, options: options,
                reactor: reactor)
            state.byInfoHash[metainfo.wireInfoHash] = id
            return id
        }
        continuation.yield(.added(id))
        start(id)
        return id
    }

    /// Adds a torrent by its magnet link: its info dictionary is fetched from peers (the link's `x.pe`,
    /// `options.peers`, the link's trackers), checked against the infohash, and the torrent then starts
    /// as `add(_:options:)` would (with the peers heard so far). `metainfo(of:)` has it from then on.
    @discardableResult
    public func add(magnet: MagnetLink, options: DownloadOptions) throws(EngineError) -> TorrentID {
        guard let infoHash = magnet.infoHashV1 else {
            // The pieces of a v2-only torrent are checked against piece layers, which come with a
            // .torrent file or from peers by BEP 52 hash requests (not implemented).
            throw .unsupportedMagnet(
                "a v2-only link (urn:btmh without urn:btih): piece layers cannot be fetched yet")
        }
        let options = shared(options)
        let id: TorrentID = try state.withLock { (state) throws(EngineError) -> TorrentID in
            guard !state.shuttingDown else { throw .shuttingDown }
            if let existing = state.byInfoHash[infoHash] { throw .duplicate(existing) }
            let id = TorrentID(value: state.nextID)
            state.nextID += 1
            let reactor = state.hosted.indices.min { state.hosted[$0] < state.hosted[$1] }!
            state.hosted[reactor] += 1
            state.records[id] = Record(
                id: id, metainfo: nil, magnet: magnet, infoHash: infoHash, options: options, reactor: reactor)
            state.byInfoHash[infoHash] = id
            return id
        }
        continuation.yield(.added(id))
        start(id)
        return id
    }

    /// The torrent's metainfo: nil for a magnet link whose metadata has not arrived (or no such torrent).
    public func metainfo(of id: TorrentID) -> Metainfo? {
        state.withLock { $0.records[id]?.metainfo }
    }

    /// Stops a torrent cleanly (writes land, resume data is saved, trackers are told); it stays in
    /// the engine, paused.
    public func pause(_ id: TorrentID) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            guard record.live else { return nil }
            record.activity = .paused
            state.records[id] = record
            return (record.reactor, record.run)
        }
        if let (reactor, run) = target { stopOnReactor(id, run: run, reactor: reactor) }
    }

    /// Starts a paused, finished or failed torrent again (from its resume data).
    public func resume(_ id: TorrentID) throws(EngineError) {
        let restart = try state.withLock { (state) throws(EngineError) -> Bool in
            guard !state.shuttingDown else { throw .shuttingDown }
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            guard !record.live, !record.removing else { return false }
            record.activity = .starting
            record.ended = nil
            state.records[id] = record
            return true
        }
        if restart { start(id) }
    }

    /// Stops a torrent (if running) and forgets it; its data and resume data stay on disk.
    public func remove(_ id: TorrentID) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)?? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            record.removing = true
            state.records[id] = record
            guard record.live else {
                forget(id, in: &state)
                return .some(nil)
            }
            return (record.reactor, record.run)
        }
        switch target {
        case .some(.some(let (reactor, run))): stopOnReactor(id, run: run, reactor: reactor)
        case .some(.none): continuation.yield(.removed(id))
        case .none: break
        }
    }

    /// The torrent's snapshot, or nil if it is not in the engine.
    public func snapshot(_ id: TorrentID) -> TorrentSnapshot? {
        settleLostReactors()
        return state.withLock { state in state.records[id].map(Self.snapshot) }
    }

    /// Every torrent's snapshot, by id.
    public func snapshots() -> [TorrentSnapshot] {
        settleLostReactors()
        return state.withLock { state in
            state.records.values.sorted { $0.id.value < $1.id.value }.map(Self.snapshot)
        }
    }

    /// All torrents at a glance, without a snapshot of each (a progress line over thousands).
    public func summary() -> EngineSummary {
        settleLostReactors()
        return state.withLock { $0.records.summary }
    }

    /// Whether any torrent is placed on a reactor and has not ended.
    public var hasLiveTorrents: Bool {
        settleLostReactors()
        return state.withLock { $0.records.liveCount > 0 }
    }

    /// Ends, with its reactor's error, every torrent of a reactor whose loop failed; new torrents go
    /// elsewhere (the reactor counts as full).
    private func settleLostReactors() {
        for (reactor, error) in lostReactors.take() {
            let ids = state.withLock { state in
                state.hosted[reactor] = Int.max / 2
                return state.records.values.filter { $0.reactor == reactor && $0.live }.map {
                    ($0.id, $0.run)
                }
            }
            for (id, run) in ids { ended(id, run: run, outcome: .failure(error)) }
        }
    }

    /// Stops every torrent cleanly and ends the threads; returns once they have. Torrents can no
    /// longer be added.
    public func shutdown() {
        state.withLock { $0.shuttingDown = true }
        saveDHTState()
        stopRequested.set()
        for inbox in inboxes { inbox.submit { _ in } }
        for thread in threads { thread.join() }
        continuation.finish()
    }

    // MARK: Limits

    /// Payload bytes per second for all torrents together (0: no limit), from now on.
    public func setGlobalRates(uploadBytesPerSecond: Int, downloadBytesPerSecond: Int) {
        uploadLimiter.setRate(uploadBytesPerSecond)
        downloadLimiter.setRate(downloadBytesPerSecond)
    }

    /// The limits for all torrents together in force now (0: none).
    public var globalUploadRateBytesPerSecond: Int { uploadLimiter.rateBytesPerSecond }
    public var globalDownloadRateBytesPerSecond: Int { downloadLimiter.rateBytesPerSecond }

    /// Connections at once across all torrents. A lower limit closes none: new ones are refused until
    /// enough have ended.
    public func setMaximumConnections(_ count: Int) { connections.setLimit(count) }

    public var maximumConnections: Int { connections.limit }

    /// The torrent's own payload rates (0: none of its own; the engine's still apply).
    public func setRates(
        _ id: TorrentID, uploadBytesPerSecond: Int, downloadBytesPerSecond: Int
    )
        throws(EngineError)
    {
        try changeLimits(id) { limits in
            limits.uploadRateBytesPerSecond = max(0, uploadBytesPerSecond)
            limits.downloadRateBytesPerSecond = max(0, downloadBytesPerSecond)
        }
    }

    /// When the torrent stops seeding (nil: no such limit); one already reached stops it at once.
    public func setSeedLimits(_ id: TorrentID, ratio: Double?, timeSeconds: Int?) throws(EngineError) {
        try changeLimits(id) { limits in
            limits.seedRatioLimit = ratio
            limits.seedTimeLimitSeconds = timeSeconds
        }
    }

    /// The torrent's connections at once. A lower limit closes none: new ones are refused until
    /// enough have ended.
    public func setMaximumPeers(_ id: TorrentID, _ count: Int) throws(EngineError) {
        try changeLimits(id) { $0.maximumPeers = max(0, count) }
    }

    /// All of the torrent's own limits at once (a front end that keeps them together).
    public func setLimits(_ id: TorrentID, _ limits: TorrentLimits) throws(EngineError) {
        try changeLimits(id) { $0 = limits }
    }

    /// How much each file of the torrent is wanted (one priority per `Metainfo.files` entry, by index),
    /// from now on and at its next start: newly wanted files are fetched (a seed downloads again),
    /// skipped ones no longer asked for; nothing verified is lost. Kept in its resume data.
    public func setFilePriorities(_ id: TorrentID, _ priorities: [FilePriority]) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            guard let metainfo = record.metainfo else { throw .metadataNotYetKnown(id) }
            precondition(priorities.count == metainfo.files.count, "one priority per file")
            record.options.filePriorities = priorities
            state.records[id] = record
            return record.live ? (record.reactor, record.run) : nil
        }
        guard let (reactor, run) = target else { return }
        inboxes[reactor].submit { [self] reactor in
            // As they are when the command runs: of two changes, the last to reach the reactor wins.
            guard let latest = state.withLock({ $0.records[id]?.options.filePriorities }) else { return }
            reactor.torrent(with: HostKey(id: id, run: run))?.setFilePriorities(latest)
        }
    }

    /// Changes the torrent's kept options, so that its next start has them, and a running session's.
    private func changeLimits(_ id: TorrentID, _ change: (inout TorrentLimits) -> Void) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            change(&record.options.limits)
            state.records[id] = record
            return record.live ? (record.reactor, record.run) : nil
        }
        guard let (reactor, run) = target else { return }
        inboxes[reactor].submit { [self] reactor in
            // The limits as they are when the command runs: of two changes on two threads, whichever
            // reaches the reactor last still applies both.
            guard let limits = state.withLock({ $0.records[id]?.options.limits }) else { return }
            reactor.torrent(with: HostKey(id: id, run: run))?.apply(limits)
        }
    }

    /// A file of at most 1 MiB, whole (nil: missing, unreadable or larger).
    private static func smallFile(at path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes {
                Glibc.read(fd, $0.baseAddress! + count, $0.count - count)
            }
            guard got > 0 else { break }
            count += got
        }
        return count < bytes.count ? Array(bytes.prefix(count)) : nil
    }

    /// Keeps the DHT's table for the next run (asked of its reactor; at most 2 s).
    private func saveDHTState() {
        guard let dht, let path = dhtStatePath else { return }
        let saved = Mutex<[UInt8]?>(nil)
        let done = DispatchSemaphore(value: 0)
        dht.inbox.submit { reactor in
            saved.withLock { $0 = reactor.dht?.savedState.encoded() }
            done.signal()
        }
        guard done.wait(timeout: .now() + 2) == .success, let bytes = saved.withLock({ $0 }) else { return }
        // Its folder, and any folder above it that is missing (`mkdir -p`).
        var folder = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        where !part.isEmpty {
            folder += "/" + part
            mkdir(folder, 0o755)
        }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        Glibc.close(fd)
        if written == bytes.count { rename(temporary, path) } else { unlink(temporary) }
    }

    /// The DHT's routing table size now (nil: no DHT); asks its reactor and waits (tests, reports).
    public func dhtNodeCount() -> Int? {
        guard let dht else { return nil }
        let count = Mutex<Int?>(nil)
        let done = DispatchSemaphore(value: 0)
        dht.inbox.submit { reactor in
            count.withLock { $0 = reactor.dht?.routingTableNodeCount }
            done.signal()
        }
        guard done.wait(timeout: .now() + 2) == .success else { return nil }
        return count.withLock { $0 }
    }

    /// `options` with what every torrent of the engine shares.
    private func shared(_ options: DownloadOptions) -> DownloadOptions {
        var options = options
        options.sharedConnectionBudget = connections
        options.sharedUploadLimiter = uploadLimiter
        options.sharedDownloadLimiter = downloadLimiter
        if let boundAddress, options.announcedPort == nil { options.announcedPort = boundAddress.port }
        options.dht = dht
        options.localDiscovery = localDiscovery
        return options
    }

    // MARK: On the reactors

    private static func snapshot(_ record: Record) -> TorrentSnapshot {
        TorrentSnapshot(
            id: record.id, name: record.name, infoHash: record.infoHash,
            activity: record.activity, status: record.status, statusReports: record.statusReports,
            ended: record.ended, isLive: record.live, limits: record.options.limits,
            metadataFetch: record.metadataFetch, hasMetadata: record.metainfo != nil,
            metadataReceivedAt: record.metadataReceivedAt)
    }

    private func forget(_ id: TorrentID, in state: inout State) {
        guard let record = state.records.removeValue(forKey: id) else { return }
        state.byInfoHash[record.infoHash] = nil
        state.hosted[record.reactor] -= 1
        router?.unregister(record.infoHash)
    }

    /// Places a new session for the torrent on its reactor.
    private func start(_ id: TorrentID) {
        guard
            let (known, options, reactor, run) = state.withLock({
                state -> (Metainfo?, DownloadOptions, Int, Int)? in
                guard var record = state.records[id] else { return nil }
                record.run += 1
                record.live = true
                if record.metainfo == nil {
                    record.activity = .fetchingMetadata
                } else if let router {
                    let inbox = IncomingInbox()
                    record.options.incomingInbox = inbox
                    router.register(record.infoHash, inbox: inbox)
                }
                state.records[id] = record
                return (record.metainfo, record.options, record.reactor, record.run)
            })
        else { return }
        guard let metainfo = known else {
            fetchMetadata(id, options: options, reactor: reactor, run: run)
            return
        }
        let log = self.log
        let namesTorrents = namesTorrentsInLog
        let name = metainfo.name
        inboxes[reactor].submit { [self] reactor in
            // Limits changed since the record was read: their command may have reached the reactor
            // before this one, and found no session to change.
            var options = options
            if let limits = state.withLock({ $0.records[id]?.options.limits }) { options.limits = limits }
            let session = DownloadSession(metainfo: metainfo, options: options) { message in
                log(namesTorrents ? "\(name): \(message)" : message)
            }
            session.hostKey = HostKey(id: id, run: run)
            session.statusHandler = { [self] status in
                state.withLock { state in
                    guard var record = state.records[id], record.run == run, record.live else { return }
                    record.status = status
                    record.statusReports += 1
                    if record.activity != .paused {
                        switch status.phase {
                        case .checking: record.activity = .checking
                        case .downloading: record.activity = .downloading
                        case .seeding: record.activity = .seeding
                        }
                    }
                    state.records[id] = record
                }
            }
            session.endHandler = { [self] outcome in ended(id, run: run, outcome: outcome) }
            if !reactor.host(session) {
                ended(id, run: run, outcome: .failure(.reactorFull))
            }
        }
    }

    /// Places the fetch of a magnet link's metadata on the torrent's reactor; once it has the
    /// metadata, the torrent starts again as any other, with the peers the fetch heard of.
    private func fetchMetadata(_ id: TorrentID, options: DownloadOptions, reactor: Int, run: Int) {
        guard let magnet = state.withLock({ $0.records[id]?.magnet }) else { return }
        let log = self.log
        let namesTorrents = namesTorrentsInLog
        let name = magnet.displayName ?? magnet.infoHashV1?.hex ?? "magnet"
        inboxes[reactor].submit { [self] reactor in
            let prefixed: (String) -> Void = { message in log(namesTorrents ? "\(name): \(message)" : message)
            }
            guard let fetch = MetadataFetchSession(magnet: magnet, options: options, log: prefixed) else {
                ended(id, run: run, outcome: .failure(.metadata("the magnet link names no infohash")))
                return
            }
            fetch.hostKey = HostKey(id: id, run: run)
            fetch.statusHandler = { [self] status in
                state.withLock { state in
                    guard var record = state.records[id], record.run == run, record.live else { return }
                    record.metadataFetch = status
                    record.statusReports += 1
                    state.records[id] = record
                }
            }
            fetch.endHandler = { [self, unowned fetch] result in
                switch result {
                case .success(let info?):
                    metadataFetched(
                        id, run: run, infoDictionary: info, peers: fetch.peersHeard, magnet: magnet)
                case .success(nil):
                    ended(id, run: run, outcome: .success(.interrupted))
                case .failure(let error):
                    ended(id, run: run, outcome: .failure(error))
                }
            }
            if !reactor.host(fetch) { ended(id, run: run, outcome: .failure(.reactorFull)) }
        }
    }

    /// On the reactor: a magnet link's info dictionary arrived and matched. It becomes the torrent's
    /// metainfo (with the link's trackers and web seeds), and the torrent starts downloading.
    private func metadataFetched(
        _ id: TorrentID, run: Int, infoDictionary: [UInt8], peers: [SocketAddress], magnet: MagnetLink
    ) {
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(bytes: magnet.torrentFile(infoDictionary: infoDictionary))
        } catch {
            ended(id, run: run, outcome: .failure(.metadata("the info dictionary is not usable: \(error)")))
            return
        }
        let restart = state.withLock { state -> Bool in
            guard var record = state.records[id], record.run == run else { return false }
            record.metainfo = metainfo
            record.metadataFetch = nil
            record.metadataReceivedAt = .now
            // Still live: its session starts at once (a snapshot in between must not see it ended).
            var known = Set(record.options.peers)
            record.options.peers += peers.filter { known.insert($0).inserted }
            state.records[id] = record
            // Paused or removed while the metadata arrived: it stays (or goes) as asked.
            guard record.activity == .fetchingMetadata, !record.removing else { return false }
            record.activity = .starting
            state.records[id] = record
            return true
        }
        if restart {
            start(id)
        } else {
            ended(id, run: run, outcome: .success(.interrupted))
        }
    }

    private func stopOnReactor(_ id: TorrentID, run: Int, reactor: Int) {
        inboxes[reactor].submit { reactor in
            reactor.tenant(with: HostKey(id: id, run: run))?.stop()
        }
    }

    /// On the reactor thread: the torrent's session left it.
    private func ended(_ id: TorrentID, run: Int, outcome: Result<DownloadOutcome, DownloadError>) {
        let removed = state.withLock { state -> Bool in
            guard var record = state.records[id], record.run == run else { return false }
            record.live = false
            switch outcome {
            case .success(.completed): if record.activity != .paused { record.activity = .finished }
            case .success(.interrupted): record.activity = .paused
            case .failure(let error): record.activity = .failed(error.description)
            }
            record.ended = outcome
            state.records[id] = record
            router?.unregister(record.infoHash)
            guard record.removing else { return false }
            forget(id, in: &state)
            return true
        }
        switch outcome {
        case .success(let value): continuation.yield(.ended(id, value, nil))
        case .failure(let error):
            // Said once, where the torrent's other lines go: a seeding server's operator reads it there.
            if let name = state.withLock({ $0.records[id]?.name }) {
                log(namesTorrentsInLog ? "\(name): stopped: \(error)" : "stopped: \(error)")
            }
            continuation.yield(.ended(id, nil, error))
        }
        if removed { continuation.yield(.removed(id)) }
    }
}

/// Reactors whose loop failed, reported from their threads.
private final class LostReactors: Sendable {
    private let failures = Mutex<[(Int, DownloadError)]>([])

    func record(_ reactor: Int, _ error: DownloadError) { failures.withLock { $0.append((reactor, error)) } }

    func take() -> [(Int, DownloadError)] {
        failures.withLock { failures in
            defer { failures.removeAll() }
            return failures
        }
    }
}

/// Set once, read by every reactor thread at each loop.
private final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Where reactor threads report whether they started, for `Engine.init` to wait on.
private final class ReactorStartup: Sendable {
    private let results: Mutex<[Result<ReactorInbox, DownloadError>?]>
    private let reported = DispatchSemaphore(value: 0)

    init(count: Int) { results = Mutex(Array(repeating: nil, count: count)) }

    func report(_ index: Int, _ result: Result<ReactorInbox, DownloadError>) {
        results.withLock { $0[index] = result }
        reported.signal()
    }

    /// Every reactor's result, once all have reported.
    func wait() -> [Result<ReactorInbox, DownloadError>] {
        let count = results.withLock { $0.count }
        for _ in 0..<count { reported.wait() }
        return results.withLock { $0.map { $0! } }
    }

    /// Waits for the first `count` threads to report (when starting the rest failed).
    func waitForReports(_ count: Int) {
        for _ in 0..<count { reported.wait() }
    }

    /// Wakes the reactors that started, so that they see the stop.
    func wakeStarted() {
        let inboxes = results.withLock { $0.compactMap { try? $0?.get() } }
        for inbox in inboxes { inbox.submit { _ in } }
    }
}

/// Which engine torrent, and which of its runs, a session on a reactor is.
struct HostKey: Hashable, Sendable {
    let id: TorrentID
    let run: Int
}
