import DHT
import Dispatch
import Glibc
import Hashing
import Locking
import Metainfo
import Synchronization
import TorrentModel
import Tracker
import URing

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

    struct State {
        var records = RecordTable()
        var byInfoHash: [InfoHash: TorrentID] = [:]
        var nextID = 1
        var hosted: [Int]
        var shuttingDown = false
    }

    let state: Lock<State>
    let inboxes: [ReactorInbox]
    private let threads: [JoinableThread]
    /// Where the router on the first reactor finds each torrent's inbox (nil: not listening).
    private let router: RouterDirectory?
    /// The listener until a reactor routes its peers (`startRoutingPeers()`), which then owns it.
    private let unroutedListener: Lock<Int32?>
    private let stopRequested = StopFlag()
    /// Reactors whose loop failed (their ring stopped working): their torrents end with the error.
    private let lostReactors = LostReactors()
    let continuation: AsyncStream<EngineEvent>.Continuation
    private let connections: ConnectionBudget
    private let uploadLimiter: RateLimiter
    private let downloadLimiter: RateLimiter
    let log: @Sendable (String) -> Void
    let onMoved: @Sendable (TorrentID, String) -> Void
    let moves = MoveThreads()
    let namesTorrentsInLog: Bool
    /// How torrents reach the DHT (nil: no DHT).
    public let dht: DHTHandle?
    let dhtStatePath: String?
    /// How torrents reach Local Service Discovery (nil: off, or its socket could not be had).
    public let localDiscovery: LocalDiscoveryHandle?
    private let restIdleSeedsAfterSeconds: Int?

    /// Starts the reactor threads (each creates its ring on itself) and the router.
    public init(options: EngineOptions = EngineOptions()) throws(EngineError) {
        let reactorCount = max(1, options.reactors)
        log = options.log
        onMoved = options.onMoved
        namesTorrentsInLog = options.namesTorrentsInLog
        restIdleSeedsAfterSeconds = options.restIdleSeedsAfterSeconds
        connections = ConnectionBudget(limit: options.maximumConnections)
        uploadLimiter = RateLimiter(rateBytesPerSecond: options.maximumUploadRateBytesPerSecond)
        downloadLimiter = RateLimiter(rateBytesPerSecond: options.maximumDownloadRateBytesPerSecond)
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
        state = Lock(State(hosted: Array(repeating: 0, count: reactorCount)))
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
        reactorOptions.log = options.log
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
        unroutedListener = Lock(router == nil ? nil : listenerFD)
        if options.routesPeersAtStart { startRoutingPeers() }
    }

    /// Starts accepting incoming peers, when `EngineOptions.routesPeersAtStart` deferred it; the first
    /// reactor accepts and routes every torrent's peers on its ring.
    public func startRoutingPeers() {
        guard let router, let listenerFD = unroutedListener.withLock({ $0.take() }) else { return }
        let log = self.log
        inboxes[0].submit { reactor in
            reactor.startRouting(listenerFD: listenerFD, directory: router, log: log)
        }
    }

    /// Reactor threads (for tests and reports).
    public var reactorCount: Int { inboxes.count }

    // MARK: Torrents

    /// Adds a torrent and starts it (checking its data, then downloading or seeding as `options` say).
    /// The engine's listener, limits and connection budget apply; `options.listenAddress` is for a
    /// torrent that wants a port of its own.
    @discardableResult
    public func add(_ metainfo: Metainfo, options: DownloadOptions) throws(EngineError) -> TorrentID {
        try admit(metainfo.wireInfoHash, options: options) { id, options, reactor in
            Record(
                id: id, metainfo: metainfo, infoHash: metainfo.wireInfoHash, options: options,
                reactor: reactor)
        }
    }

    /// Registers a new torrent known by `infoHash` on the reactor hosting the fewest, and starts it.
    func admit(
        _ infoHash: InfoHash, options: DownloadOptions,
        record: (TorrentID, DownloadOptions, _ reactor: Int) -> Record
    ) throws(EngineError) -> TorrentID {
        let options = shared(options)
        let id: TorrentID = try state.withLock { (state) throws(EngineError) -> TorrentID in
            guard !state.shuttingDown else { throw .shuttingDown }
            if let existing = state.byInfoHash[infoHash] { throw .duplicate(existing) }
            let id = TorrentID(value: state.nextID)
            state.nextID += 1
            let reactor = state.hosted.indices.min { state.hosted[$0] < state.hosted[$1] }!
            state.hosted[reactor] += 1
            state.records[id] = record(id, options, reactor)
            state.byInfoHash[infoHash] = id
            return id
        }
        continuation.yield(.added(id))
        if !finishInterruptedMove(id) { start(id) }
        return id
    }

    /// Stops a torrent cleanly (writes land, resume data is saved, trackers are told); it stays in
    /// the engine, paused.
    public func pause(_ id: TorrentID) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            if record.move != nil {
                // It stays paused once its files are moved.
                record.move?.restart = false
                record.move?.activityAfter = .paused
                record.move?.heldEnd = nil
                state.records[id] = record
            }
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
            if record.move != nil {
                record.move?.restart = true
                state.records[id] = record
                return false
            }
            guard !record.live, !record.removing else { return false }
            record.activity = .starting
            record.ended = nil
            state.records[id] = record
            return true
        }
        if restart && !finishInterruptedMove(id) { start(id) }
    }

    /// Stops a torrent (if running) and forgets it; its data and resume data stay on disk.
    public func remove(_ id: TorrentID) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)?? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            record.removing = true
            state.records[id] = record
            // Its files are moving: it goes once they are where the move leaves them (forgotten now,
            // an add of the same torrent would start a second move of the same files).
            if record.move != nil && !record.live { return nil }
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

    /// Has a running torrent announce to its trackers now instead of at their next interval; ignored
    /// within a minute of the last time (see `DownloadSession.reannounce`), and for a stopped torrent.
    public func reannounce(_ id: TorrentID) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard let record = state.records[id] else { throw .unknownTorrent(id) }
            return record.live ? (record.reactor, record.run) : nil
        }
        guard let (reactor, run) = target else { return }
        inboxes[reactor].submit { reactor in
            switch reactor.tenant(with: HostKey(id: id, run: run)) {
            case let session as DownloadSession: session.reannounce(now: session.nowNanoseconds)
            case let resting as RestingTorrent: resting.wakeToReannounce()
            default: break
            }
        }
    }

    /// The torrent's snapshot, or nil if it is not in the engine.
    public func snapshot(_ id: TorrentID) -> TorrentSnapshot? {
        settleLostReactors()
        return state.withLock { state in state.records.snapshot(of: id) }
    }

    /// The mark of every torrent's snapshot as they are now, and the torrents whose snapshots may have
    /// changed (or that were added or removed) since the `earlier` mark; nil when the engine no longer
    /// knows, or `earlier` is nil. What a front end that keeps what it made of each snapshot looks at
    /// again. Asked before the snapshots it goes with: a change in between is told again next time.
    public func changes(since earlier: Int?) -> (mark: Int, changed: Set<TorrentID>?) {
        settleLostReactors()
        return state.withLock { state in
            (state.records.journal.mark, earlier.flatMap { state.records.journal.changedIDs(since: $0) })
        }
    }

    /// What each tracker of the torrent last did and will do next, in announce-list order: asked
    /// apart from `snapshot(_:)`, which would otherwise copy these for every torrent. Empty for a
    /// torrent that has not announced since it was added.
    public func trackerStatus(of id: TorrentID) -> [TrackerStatus] {
        let board = state.withLock { $0.records[id]?.options.trackerBoard }
        return board?.statuses ?? []
    }

    /// Every torrent's snapshot, by id.
    public func snapshots() -> [TorrentSnapshot] {
        settleLostReactors()
        return state.withLock { state in
            state.records.snapshots.sorted { $0.id.value < $1.id.value }
        }
    }

    /// Operations the reactors' rings have in flight (sockets, files, timers), as of each reactor's
    /// last pass: steady under a steady load, so growth without bound is a leak.
    public var ringOperationsInFlight: Int {
        inboxes.reduce(0) { $0 + $1.operationsInFlight.load(ordering: .relaxed) }
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
        if let listenerFD = unroutedListener.withLock({ $0.take() }) { Glibc.close(listenerFD) }
        saveDHTState()
        stopRequested.set()
        for inbox in inboxes { inbox.submit { _ in } }
        for thread in threads { thread.join() }
        moves.joinAll()
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
        try changeOptions(id) { (record) throws(EngineError) in
            guard let metainfo = record.metainfo else { throw .metadataNotYetKnown(id) }
            precondition(priorities.count == metainfo.files.count, "one priority per file")
            record.options.filePriorities = priorities
        } then: { session, options in
            if let priorities = options.filePriorities { session.setFilePriorities(priorities) }
        }
    }

    /// Replaces the torrent's announce tiers (BEP 12 order; empty: no trackers), from now on and at
    /// its next start: a running torrent announces to the new set at once (see
    /// `TrackerAnnouncer.replaceTrackers`), and so does a magnet link's torrent still fetching its
    /// metadata.
    public func setTrackers(_ id: TorrentID, _ tiers: [[String]]) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            record.options.trackers = tiers
            state.records[id] = record
            return record.live ? (record.reactor, record.run) : nil
        }
        guard let (reactor, run) = target else { return }
        inboxes[reactor].submit { reactor in
            switch reactor.tenant(with: HostKey(id: id, run: run)) {
            case let session as DownloadSession: session.replaceTrackers(tiers)
            case let fetch as MetadataFetchSession: fetch.replaceTrackers(tiers)
            case let resting as RestingTorrent: resting.wakeUp()
            default: break
            }
        }
    }

    /// Where the torrent's files are under its download folder, one path per file (nil: the
    /// metainfo's), for a torrent that is not running: a front end that renamed files on disk
    /// (torrent-rename-path) tells the engine before starting it again. Resume data still vouches for
    /// the renamed files, which keep their sizes and times.
    public func setFilePaths(_ id: TorrentID, _ paths: [[String]]?) throws(EngineError) {
        try state.withLock { (state) throws(EngineError) in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            guard let metainfo = record.metainfo else { throw .metadataNotYetKnown(id) }
            guard record.move == nil else { throw .moving(id) }
            guard !record.live else { throw .running(id) }
            if let paths {
                guard paths.count == metainfo.files.count,
                    paths.allSatisfy({ !$0.isEmpty && $0.allSatisfy(FileEntry.isValidPathComponent) })
                else { throw .invalidFilePaths(id) }
            }
            record.options.filePaths = paths
            state.records[id] = record
        }
    }

    /// Changes the torrent's own limits (see `changeOptions`).
    private func changeLimits(
        _ id: TorrentID, _ change: @escaping (inout TorrentLimits) -> Void
    ) throws(EngineError) {
        try changeOptions(id) { record in
            change(&record.options.limits)
        } then: {
            $0.apply($1.limits)
        }
    }

    /// Changes the torrent's kept options (`change` may refuse), so that its next start has them, and
    /// hands a running session the options as they are when the command reaches its reactor: of two
    /// changes on two threads, whichever arrives last still applies both.
    private func changeOptions(
        _ id: TorrentID, _ change: (inout Record) throws(EngineError) -> Void,
        then apply: @escaping @Sendable (DownloadSession, DownloadOptions) -> Void
    ) throws(EngineError) {
        let target = try state.withLock { (state) throws(EngineError) -> (Int, Int)? in
            guard var record = state.records[id] else { throw .unknownTorrent(id) }
            try change(&record)
            state.records[id] = record
            return record.live ? (record.reactor, record.run) : nil
        }
        guard let (reactor, run) = target else { return }
        inboxes[reactor].submit { [self] reactor in
            let tenant = reactor.tenant(with: HostKey(id: id, run: run))
            // A resting torrent's next session starts with the options as they are.
            if let resting = tenant as? RestingTorrent { return resting.wakeUp() }
            guard let options = state.withLock({ $0.records[id]?.options }),
                let session = tenant as? DownloadSession
            else { return }
            apply(session, options)
        }
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
        options.restAfterIdleSeconds = restIdleSeedsAfterSeconds
        return options
    }

    // MARK: On the reactors

    func forget(_ id: TorrentID, in state: inout State) {
        guard let record = state.records.removeValue(forKey: id) else { return }
        state.byInfoHash[record.infoHash] = nil
        state.hosted[record.reactor] -= 1
        router?.unregister(record.infoHash)
    }

    /// Places a new session for the torrent on its reactor.
    func start(_ id: TorrentID) {
        guard
            let (known, options, reactor, run) = state.withLock({
                state -> (Metainfo?, DownloadOptions, Int, Int)? in
                guard var record = state.records[id] else { return nil }
                record.run += 1
                record.live = true
                if record.options.trackerBoard == nil { record.options.trackerBoard = TrackerStatusBoard() }
                if record.metainfo == nil {
                    record.activity = .fetchingMetadata
                } else if let router {
                    let inbox = IncomingInbox()
                    record.options.incomingInbox = inbox
                    router.register(
                        record.infoHash, alias: record.metainfo?.hybridV2WireInfoHash, inbox: inbox)
                }
                state.records[id] = record
                return (record.metainfo, record.options, record.reactor, record.run)
            })
        else { return }
        guard let metainfo = known else {
            fetchMetadata(id, options: options, reactor: reactor, run: run)
            return
        }
        let standIn = makeStandIn(id, run: run, options: options, infoHash: metainfo.wireInfoHash)
        inboxes[reactor].submit { [self] reactor in
            // Limits changed since the record was read: their command may have reached the reactor
            // before this one, and found no session to change.
            var options = options
            if let limits = state.withLock({ $0.records[id]?.options.limits }) { options.limits = limits }
            place(id, run: run, metainfo: metainfo, options: options, on: reactor, standIn: standIn)
        }
    }

    /// What stands in for the torrent's sessions of run `run` while they rest. Made here, on the
    /// caller's thread, not when a session rests: on the reactor's thread it would sit in the malloc
    /// arena between sessions' memory and keep those pages from going back to the kernel.
    private func makeStandIn(
        _ id: TorrentID, run: Int, options: DownloadOptions, infoHash: InfoHash
    )
        -> RestingTorrent
    {
        RestingTorrent(
            key: HostKey(id: id, run: run), infoHash: infoHash, inbox: options.incomingInbox, engine: self)
    }

    /// A torrent's run left the DHT and local discovery, which announce it for the run.
    func leaveDiscovery(_ infoHash: InfoHash, key: HostKey) {
        dht?.unsubscribe(infoHash, key: key)
        localDiscovery?.unsubscribe(infoHash, key: key)
    }

    /// On the reactor thread: hosts a session for the torrent's run `run` (taking over from one that
    /// rested, when `standIn` holds what it carried).
    private func place(
        _ id: TorrentID, run: Int, metainfo: Metainfo, options: DownloadOptions, on reactor: Reactor,
        standIn: RestingTorrent
    ) {
        let log = self.log
        let namesTorrents = namesTorrentsInLog
        let name = metainfo.name
        let session = DownloadSession(metainfo: metainfo, options: options) { message in
            log(namesTorrents ? "\(name): \(message)" : message)
        }
        if let carry = standIn.carry { session.resume(from: carry) }
        session.hostKey = HostKey(id: id, run: run)
        session.statusHandler = { [self] status in
            let complete = state.withLock { state -> (Bool, Int)? in
                guard var record = state.records[id], record.run == run, record.live else { return nil }
                record.status = status
                record.statusReports += 1
                if record.activity != .paused {
                    switch status.phase {
                    case .checking: record.activity = .checking
                    case .downloading: record.activity = .downloading
                    case .seeding: record.activity = .seeding
                    }
                }
                // A seed moves out of its incomplete folder now; a download that ends at
                // completion moves once it has ended.
                let moving =
                    status.phase == .seeding && record.options.seedWhenComplete && moveWhenComplete(&record)
                state.records[id] = record
                return (moving, record.reactor)
            }
            if let (moving, reactorIndex) = complete, moving {
                stopForMove(id, run: run, reactor: reactorIndex)
            }
        }
        session.endHandler = { [self] outcome in ended(id, run: run, outcome: outcome) }
        session.restHandler = { [self] reactor, carry in
            rest(id, run: run, standIn: standIn, carry: carry, on: reactor)
        }
        if !reactor.host(session) {
            ended(id, run: run, outcome: .failure(.reactorFull))
        }
    }

    /// On the reactor thread: the torrent's session rested; its stand-in takes its place until a peer
    /// or a command wakes it, and the torrent reads as seeding with no peers and no rates meanwhile.
    private func rest(
        _ id: TorrentID, run: Int, standIn: RestingTorrent, carry: RestCarry, on reactor: Reactor
    ) {
        state.withLock { state in
            guard var record = state.records[id], record.run == run, record.live else { return }
            record.resting = true
            if var status = record.status {
                status.uploadRateBytesPerSecond = 0
                status.downloadRateBytesPerSecond = 0
                status.connectedPeers = 0
                record.status = status
                record.statusReports += 1
            }
            state.records[id] = record
        }
        standIn.carry = carry
        if !reactor.host(standIn) {
            ended(id, run: run, outcome: .failure(.reactorFull))
        }
        reactor.memoryFreed()
    }

    /// On the reactor thread: a resting torrent is needed; a new session of the same run takes over.
    func wake(_ id: TorrentID, run: Int, standIn: RestingTorrent, on reactor: Reactor) {
        let found = state.withLock { state -> (Metainfo, DownloadOptions)? in
            guard var record = state.records[id], record.run == run, record.live,
                let metainfo = record.metainfo
            else { return nil }
            record.resting = false
            state.records[id] = record
            return (metainfo, record.options)
        }
        guard let (metainfo, options) = found else { return }
        place(id, run: run, metainfo: metainfo, options: options, on: reactor, standIn: standIn)
    }

    private func stopOnReactor(_ id: TorrentID, run: Int, reactor: Int) {
        inboxes[reactor].submit { reactor in
            reactor.tenant(with: HostKey(id: id, run: run))?.stop()
        }
    }

    /// On the reactor thread: the torrent's session left it.
    func ended(_ id: TorrentID, run: Int, outcome: Result<DownloadOutcome, DownloadError>) {
        let (removed, moving) = state.withLock { state -> (Bool, Bool) in
            guard var record = state.records[id], record.run == run else { return (false, false) }
            record.live = false
            record.resting = false
            if moveAfterEnd(&record, outcome: outcome) {
                state.records[id] = record
                router?.unregister(record.infoHash)
                return (false, true)
            }
            switch outcome {
            case .success(.completed): if record.activity != .paused { record.activity = .finished }
            case .success(.interrupted): record.activity = .paused
            case .failure(let error): record.activity = .failed(error.description)
            }
            record.ended = outcome
            state.records[id] = record
            router?.unregister(record.infoHash)
            guard record.removing else { return (false, false) }
            forget(id, in: &state)
            return (true, false)
        }
        if moving {
            runMove(id)
            return
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
    private let failures = Lock<[(Int, DownloadError)]>([])

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
    private let results: Lock<[Result<ReactorInbox, DownloadError>?]>
    private let reported = DispatchSemaphore(value: 0)

    init(count: Int) { results = Lock(Array(repeating: nil, count: count)) }

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
