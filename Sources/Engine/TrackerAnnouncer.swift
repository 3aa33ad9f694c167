import TorrentModel
import Tracker
import URing

/// What one torrent tells its trackers and learns from them: BEP 12 tiers, the announce lifecycle
/// (`started`, regular re-announces honouring `interval` and `min interval`, `completed` once, `stopped`
/// at a clean exit) and the peers they hand out. The pure `TrackerTiers` and `AnnounceScheduler` decide;
/// ``TrackerClient`` carries the exchanges on the reactor's ring.
///
/// Invariants: at most one announce is in flight (the scheduler's); a failed announce is retried on the
/// next tracker of the tiers with the same event before the scheduler hears of the failure, and only
/// when every tracker failed does the scheduler back off; `stopped` goes only to the tracker that last
/// answered, and is never retried elsewhere; peers are handed out once each.
final class TrackerAnnouncer {
    /// Transfer totals for an announce, read when it is built.
    struct Totals {
        var uploadedBytes: UInt64
        var downloadedBytes: UInt64
        var leftBytes: UInt64
    }

    /// How many peers we ask for: trackers cap `numwant` at about 200 anyway.
    static let numberWanted = 200
    /// Dictionary-form peers given by DNS name (BEP 3) waiting for their lookup at once: a tracker
    /// cannot make us resolve hundreds of names.
    static let maximumNamedPeers = 16
    /// How often a watched torrent's trackers are scraped for their swarm counts (Transmission's
    /// period), the first time once the first announce round is over.
    static let scrapeIntervalSeconds: UInt64 = 1800
    /// The most trackers scraped in one round: an announce list is the torrent's to choose.
    static let maximumScrapedTrackers = 32
    /// The longest a clean exit waits for `completed` and `stopped` to be answered.
    static let shutdownWaitSeconds: UInt64 = 10

    private enum Shutdown {
        case running
        /// The download finished: `completed` first (if due), then `stopped`.
        case settlingCompleted(deadline: UInt64)
        case stopping(deadline: UInt64)
    }

    private let client: TrackerClient
    private var tiers: TrackerTiers
    private var scheduler = AnnounceScheduler()
    /// Shuffles the tiers of an edited announce list.
    private var random: SeededRandom
    private let infoHash: InfoHash
    private let peerID: PeerID
    private var key: UInt32
    private let port: UInt16
    private let totals: () -> Totals
    private let log: (String) -> Void
    private var inFlight: (id: TrackerClient.ExchangeID, url: TrackerURL, event: AnnounceEvent)?
    /// An announce that failed on one tracker, to be tried on the next one.
    private var retryEvent: AnnounceEvent?
    private var discovered: [SocketAddress] = []
    /// Peers a tracker named by DNS name, resolved off the reactor thread like tracker host names.
    private var namedPeers: [(name: String, port: UInt16)] = []
    private let peerNameResolver: HostResolver
    private var shutdown = Shutdown.running
    /// Whether some tracker has answered `started` (only then are `completed` and `stopped` sent).
    private var startedAnswered = false
    /// The tracker that answered last: the one that counts us, so the one told we leave. (BEP 12 starts
    /// every other announce from the first tier again, which may hold trackers that never answered.)
    private var lastAnswered: TrackerURL?
    /// For the progress line.
    private(set) var state = "tracker: starting"
    /// Each tracker's last outcome and schedule, for front ends.
    private let board: TrackerStatusBoard?
    /// Unix seconds, for the board's times.
    private let wallClock: () -> Int64
    /// When the next scrape round is due (nil: the first announce round is not over).
    private var nextScrapeAt: UInt64?
    /// Where scrapes go, to be asked together with other torrents' (nil: this torrent is not scraped).
    private let scrapes: ScrapeBatcher?
    /// Trackers of the scrape round not answered yet.
    private var scrapesInFlight: Set<TrackerURL> = []

    /// Called when a tracker answered outside ``handle(_:now:)`` and ``tick(now:)`` (over the reactor's
    /// shared UDP socket): ``takePeers()`` may have news.
    var trackerAnswered: ((UInt64) -> Void)?

    /// Nil when the torrent names no usable tracker (the reasons are logged).
    init?(
        ring: Ring, tenant: UInt16, udp: UDPTrackerTransport?, scrapes: ScrapeBatcher?, trackers: [[String]],
        isPrivate: Bool, infoHash: InfoHash, peerID: PeerID, port: UInt16, seed: UInt64,
        extraCAFile: String? = nil, board: TrackerStatusBoard? = nil,
        wallClock: @escaping () -> Int64 = TrackerStatusBoard.wallClock, totals: @escaping () -> Totals,
        log: @escaping (String) -> Void
    ) {
        var random = SeededRandom(seed: seed ^ 0x7472_6163_6b65_7273)
        tiers = TrackerTiers(
            announce: nil, announceList: trackers, isPrivate: isPrivate, random: &random)
        for rejected in tiers.rejectedURLs { log("tracker ignored: \(rejected)") }
        guard !tiers.allTrackers.isEmpty else { return nil }
        self.random = random
        self.infoHash = infoHash
        self.peerID = peerID
        self.key = PeerIdentity.makeKey(using: &random)
        self.port = port
        self.totals = totals
        self.log = log
        self.board = board
        self.scrapes = scrapes
        self.wallClock = wallClock
        board?.update { [tiers] in $0.replaceTrackers(tiers.allTrackers) }
        peerNameResolver = HostResolver(waker: ring.waker)
        client = TrackerClient(
            ring: ring, tenant: tenant, seed: random.next(), resolver: HostResolver(waker: ring.waker),
            udpTransport: udp, extraCAFile: extraCAFile, log: log)
        client.udpExchangeEnded = { [unowned self] now in
            collect(now: now)
            trackerAnswered?(now)
        }
    }

    /// What a seed that rests keeps of its announcer for the next session on the same reactor: where it
    /// stands with its trackers, so that the next one announces when this one would have (no `started`
    /// again, the same key, the tracker that counts us). A class: a resting torrent without trackers
    /// (most of 10,000 seeds at rest) then carries a nil reference instead of 264 empty bytes.
    final class Memory {
        fileprivate var scheduler: AnnounceScheduler
        fileprivate let tiers: TrackerTiers
        fileprivate let random: SeededRandom
        fileprivate let key: UInt32
        fileprivate let lastAnswered: TrackerURL?
        fileprivate let nextScrapeAt: UInt64?
        fileprivate let state: String
        /// When the next announce (or scrape) is due, in reactor time: the resting torrent wakes then.
        let wakeAt: UInt64

        fileprivate init(_ announcer: TrackerAnnouncer, wakeAt: UInt64) {
            scheduler = announcer.scheduler
            tiers = announcer.tiers
            random = announcer.random
            key = announcer.key
            lastAnswered = announcer.lastAnswered
            nextScrapeAt = announcer.nextScrapeAt
            state = announcer.state
            self.wakeAt = wakeAt
        }

        /// A client asked for an announce now (see `TrackerAnnouncer.announceNow`).
        func announceNow(now: UInt64) { scheduler.announceNow(now: Instant(nanoseconds: now)) }
    }

    /// The announcer put away for a rest (see ``Memory``), or nil while anything is under way: an
    /// exchange, a retry, a name lookup, a scrape, peers not yet taken, `started` not yet answered, or
    /// an announce due within `margin` nanoseconds.
    func memoryForRest(now: UInt64, margin: UInt64) -> Memory? {
        guard case .running = shutdown, scheduler.phase == .running, startedAnswered, inFlight == nil,
            retryEvent == nil, namedPeers.isEmpty, scrapesInFlight.isEmpty, discovered.isEmpty, client.isIdle
        else { return nil }
        let wakeAt = min(scheduler.nextAnnounceAt.nanoseconds, nextScrapeAt ?? .max)
        guard wakeAt > now + margin else { return nil }
        return Memory(self, wakeAt: wakeAt)
    }

    /// Takes over from the announcer of a session that rested, in place of ``start(now:isComplete:)``;
    /// false when the announce list changed meanwhile (then start afresh).
    func resume(_ memory: Memory, now: UInt64) -> Bool {
        guard memory.tiers.allTrackers == tiers.allTrackers else { return false }
        scheduler = memory.scheduler
        tiers = memory.tiers
        random = memory.random
        key = memory.key
        lastAnswered = memory.lastAnswered
        nextScrapeAt = memory.nextScrapeAt
        startedAnswered = true
        state = memory.state
        publishSchedule(now: now)
        return true
    }

    /// Begins the session: `started` goes out at the next ``tick(now:)``.
    func start(now: UInt64, isComplete: Bool) {
        scheduler.start(now: Instant(nanoseconds: now), isComplete: isComplete)
        publishSchedule(now: now)
    }

    /// Peers learnt since the last call.
    func takePeers() -> [SocketAddress] {
        defer { discovered.removeAll(keepingCapacity: true) }
        return discovered
    }

    /// The download finished: `completed` is due (once).
    func downloadCompleted(now: UInt64) {
        scheduler.downloadCompleted(now: Instant(nanoseconds: now))

        publishSchedule(now: now)
    }

    /// The announce list was edited. While the tracker that counts us stays (and none removed is being
    /// asked), the schedule goes on and the next announce walks the new tiers. Otherwise the swarm is
    /// joined afresh: `started` goes to the new tiers at once, and the tracker left behind is told
    /// `stopped` without waiting for its answer. An empty list stops announcing until trackers return.
    func replaceTrackers(_ trackers: [[String]], isComplete: Bool, now: UInt64) {
        tiers = TrackerTiers(
            announce: nil, announceList: trackers, isPrivate: tiers.isPrivate, random: &random)
        for rejected in tiers.rejectedURLs { log("tracker ignored: \(rejected)") }
        board?.update { [tiers] in $0.replaceTrackers(tiers.allTrackers) }
        guard case .running = shutdown else { return }
        let kept = Set(tiers.allTrackers)
        let askingRemoved = inFlight.map { !kept.contains($0.url) } ?? false
        if let lastAnswered, kept.contains(lastAnswered), !askingRemoved { return }
        if let current = inFlight {
            inFlight = nil
            client.abandon(current.id)
            _ = client.takeFinished()
            board?.update { $0.announceAbandoned(current.url) }
        }
        if startedAnswered, let lastAnswered, !kept.contains(lastAnswered),
            !client.mustWait(for: lastAnswered)
        {
            // Unwatched: `collect` ignores every exchange but the one in flight.
            log("tracker \(lastAnswered): removed; announcing stopped")
            _ = client.begin(.announce(request(.stopped)), url: lastAnswered, now: now)
        }
        retryEvent = nil
        startedAnswered = false
        lastAnswered = nil
        scheduler = AnnounceScheduler()
        scheduler.start(now: Instant(nanoseconds: now), isComplete: isComplete)
        state = "tracker: starting"
        publishSchedule(now: now)
        log("trackers edited: announcing to \(tiers.allTrackers.count) trackers")
    }

    /// Ask for more peers as soon as `min interval` allows (say, when every known peer is gone).
    func wantMorePeers(now: UInt64) {
        scheduler.requestAnnounce(now: Instant(nanoseconds: now))

        publishSchedule(now: now)
    }

    /// A client asked to announce now: see ``AnnounceScheduler/announceNow(now:)``.
    func announceNow(now: UInt64) {
        scheduler.announceNow(now: Instant(nanoseconds: now))

        publishSchedule(now: now)
    }

    /// A completion whose token carries ``TrackerClient/owner``.
    func handle(_ completion: Completion, now: UInt64) {
        client.handle(completion, now: now)
        collect(now: now)
    }

    /// Timers: retransmissions, retries, due announces, and the shutdown sequence.
    func tick(now: UInt64) {
        client.tick(now: now)
        collect(now: now)
        resolveNamedPeers()
        scrapeIfDue(now: now)
        let instant = Instant(nanoseconds: now)
        switch shutdown {
        case .running:
            break
        case .settlingCompleted(let deadline):
            // `completed` has gone (or cannot go: the tracker fails, or `started` never got through).
            if scheduler.completedSettled || scheduler.consecutiveFailures > 0 || now >= deadline {
                scheduler.stop()
                shutdown = .stopping(deadline: deadline)
            }
        case .stopping:
            break
        }
        // Without trackers (all removed) nothing is asked, and nothing is left waiting for an answer.
        guard inFlight == nil, !tiers.allTrackers.isEmpty else { return }
        if let event = retryEvent, let url = tiers.current {
            retryEvent = nil
            announce(event, to: url, now: now)
            return
        }
        guard case .announce(let event) = scheduler.poll(now: instant) else { return }
        if event == .stopped, let lastAnswered {
            announce(event, to: lastAnswered, now: now)
            return
        }
        if tiers.current == nil { tiers.restart() }
        guard let url = tiers.current else { return }
        announce(event, to: url, now: now)
    }

    /// A clean exit: `completed` first when `completed` says the download just finished, then `stopped`,
    /// all within ``shutdownWaitSeconds``. Poll ``isFinished(now:)``.
    func beginShutdown(now: UInt64, completed: Bool) {
        guard case .running = shutdown else { return }
        if retryEvent != nil {
            // The announce waiting for its next tracker will not be sent: the scheduler must know.
            retryEvent = nil
            scheduler.announceFailed(now: Instant(nanoseconds: now))
        }
        if !startedAnswered {
            // The swarm never counted us in: there is nothing to complete or take back.
            if let current = inFlight {
                inFlight = nil
                client.abandon(current.id)
                _ = client.takeFinished()
                scheduler.announceFailed(now: Instant(nanoseconds: now))
                board?.update { $0.announceAbandoned(current.url) }
            }
            scheduler.stop()
            shutdown = .stopping(deadline: now)
            return
        }
        if let current = inFlight, current.event == .none {
            // A regular announce is not worth waiting for: abandoning it lets `stopped` go now.
            inFlight = nil
            client.abandon(current.id)
            _ = client.takeFinished()
            scheduler.announceFailed(now: Instant(nanoseconds: now))
            board?.update { $0.announceAbandoned(current.url) }
        }
        let deadline = now + Self.shutdownWaitSeconds * 1_000_000_000
        if completed {
            scheduler.downloadCompleted(now: Instant(nanoseconds: now))
            shutdown = .settlingCompleted(deadline: deadline)
        } else {
            scheduler.stop()
            shutdown = .stopping(deadline: deadline)
        }
    }

    /// Whether the shutdown sequence is over (answered, failed, or out of time).
    func isFinished(now: UInt64) -> Bool {
        switch shutdown {
        case .running: return false
        case .settlingCompleted(let deadline): return now >= deadline
        case .stopping(let deadline):
            return now >= deadline || (scheduler.phase == .stopped && inFlight == nil)
        }
    }

    /// Closes the sockets; exchanges still running are dropped.
    func close() { client.closeAll() }

    /// Operations still on the ring after ``close()``: the torrent leaves the reactor once there are none.
    var hasOperationsInFlight: Bool { client.hasOperationsInFlight }

    private func announce(_ event: AnnounceEvent, to url: TrackerURL, now: UInt64) {
        if client.mustWait(for: url) {
            // Ask again at the next tick; the lookup (or the certificate store) loads off the reactor
            // thread.
            if retryEvent == nil {
                let wall = wallClock()
                board?.update { [tiers] in
                    $0.schedule(trying: tiers.allTrackers, through: url, dueTime: wall, queued: true)
                }
            }
            retryEvent = event
            return
        }
        log("tracker \(url): announcing \(event)")
        inFlight = (client.begin(.announce(request(event)), url: url, now: now), url, event)
        let wall = wallClock()
        board?.update { $0.announceStarted(url, now: wall) }
    }

    private func request(_ event: AnnounceEvent) -> AnnounceRequest {
        let current = totals()
        return AnnounceRequest(
            infoHash: infoHash, peerID: peerID, port: port, uploadedBytes: current.uploadedBytes,
            downloadedBytes: current.downloadedBytes, leftBytes: current.leftBytes, event: event,
            numberWanted: event == .stopped ? 0 : Self.numberWanted, key: key, trackerID: scheduler.trackerID)
    }

    private func collect(now: UInt64) {
        for (id, reply) in client.takeFinished() {
            guard let current = inFlight, current.id == id else { continue }
            inFlight = nil
            let instant = Instant(nanoseconds: now)
            switch reply {
            case .announced(let response):
                scheduler.announceSucceeded(response, now: instant)
                tiers.currentSucceeded()
                lastAnswered = current.url
                if current.event == .started { startedAnswered = true }
                var added = 0
                for peer in response.peers {
                    if case .name(let name) = peer.host {
                        guard namedPeers.count < Self.maximumNamedPeers else { continue }
                        namedPeers.append((name, peer.port))
                        added += 1
                        continue
                    }
                    guard let address = Self.socketAddress(peer) else { continue }
                    discovered.append(address)
                    added += 1
                }
                resolveNamedPeers()
                if let warning = response.warningMessage {
                    log("tracker \(current.url): warning: \(warning)")
                }
                for skipped in response.skippedPeers.prefix(5) {
                    log("tracker \(current.url): skipped a peer: \(skipped)")
                }
                log(
                    "tracker \(current.url): \(current.event) answered: \(added) peers, "
                        + "next in \(response.intervalSeconds) s")
                state = "tracker: ok \(added) peers"
                let wall = wallClock()
                board?.update {
                    $0.announceSucceeded(
                        current.url, peerCount: response.peers.count, seeders: response.seederCount,
                        leechers: response.leecherCount, warning: response.warningMessage, now: wall)
                }
            case .failed(let failure):
                log("tracker \(current.url): \(current.event) failed: \(failure)")
                state = "tracker: error \(failure)"
                if current.event != .stopped, tiers.currentFailed() != nil {
                    retryEvent = current.event
                } else {
                    scheduler.announceFailed(now: instant)
                    tiers.restart()
                }
                let wall = wallClock()
                var timedOut = false
                if case .timedOut = failure { timedOut = true }
                board?.update {
                    $0.announceFailed(current.url, reason: failure.description, timedOut: timedOut, now: wall)
                }
            default:
                break
            }
            if nextScrapeAt == nil, retryEvent == nil { nextScrapeAt = now }
            publishSchedule(now: now)
        }
    }

    /// Tells the board which trackers the coming round asks, and when: a retry goes on to the next
    /// tracker at once; after an answer the next round walks again up to the one that answered;
    /// after a round that failed everywhere, or before any answer, it walks them all.
    private func publishSchedule(now: UInt64) {
        guard let board else { return }
        let wall = wallClock()
        let trying = tiers.allTrackers
        let last: TrackerURL?
        if scheduler.phase != .running {
            last = nil
        } else if retryEvent != nil {
            last = tiers.current
        } else if scheduler.consecutiveFailures == 0, let lastAnswered {
            last = lastAnswered
        } else {
            last = trying.last
        }
        let due = scheduler.nextAnnounceAt.nanoseconds
        let dueTime = retryEvent != nil || due <= now ? wall : wall + Int64((due - now) / 1_000_000_000)
        board.update { $0.schedule(trying: trying, through: last, dueTime: dueTime) }
    }

    /// Starts a scrape round when one is due (only for a torrent whose figures someone reads): each
    /// tracker is asked through the reactor's `ScrapeBatcher`, with other torrents' scrapes.
    private func scrapeIfDue(now: UInt64) {
        guard let board, let scrapes, case .running = shutdown, let due = nextScrapeAt, now >= due,
            scrapesInFlight.isEmpty
        else { return }
        nextScrapeAt = now + Self.scrapeIntervalSeconds * 1_000_000_000
        let wall = wallClock()
        for url in tiers.allTrackers.prefix(Self.maximumScrapedTrackers) {
            scrapesInFlight.insert(url)
            board.update { $0.scrapeStarted(url, now: wall) }
            scrapes.scrape(infoHash, at: url, now: now) { [weak self] reply in self?.scraped(url, reply) }
        }
    }

    private func scraped(_ url: TrackerURL, _ reply: TrackerClient.Reply) {
        scrapesInFlight.remove(url)
        let wall = wallClock()
        let nextTime = wall + Int64(Self.scrapeIntervalSeconds)
        switch reply {
        case .scraped(let entries):
            // A tracker that does not know the torrent leaves it out: zeros, as BEP 48 has it.
            let entry = entries.first { $0.infoHash == infoHash }
            board?.update {
                $0.scrapeSucceeded(
                    url, seeders: entry?.seederCount ?? 0, leechers: entry?.leecherCount ?? 0,
                    downloads: entry?.completedCount ?? 0, nextTime: nextTime, now: wall)
            }
        case .failed(let failure):
            var timedOut = false
            if case .timedOut = failure { timedOut = true }
            board?.update {
                $0.scrapeFailed(
                    url, reason: failure.description, timedOut: timedOut, nextTime: nextTime, now: wall)
            }
        case .announced:
            break
        }
    }

    /// Peers named by DNS name whose lookup finished join the discovered ones; failed names are dropped.
    private func resolveNamedPeers() {
        namedPeers.removeAll { peer in
            switch peerNameResolver.lookup(peer.name) {
            case .pending:
                return false
            case .resolved(let address):
                discovered.append(address.with(port: peer.port))
                return true
            case .failed(let reason):
                log("tracker peer \(peer.name):\(peer.port): cannot resolve: \(reason)")
                return true
            }
        }
    }

    /// A peer's address to connect to; DNS names wait for ``resolveNamedPeers()``.
    static func socketAddress(_ peer: TrackerPeer) -> SocketAddress? {
        switch peer.host {
        case .ipv4(let address): .ipv4(address: address.value, port: peer.port)
        case .ipv6(let address): .ipv6(address: address.bytes, port: peer.port)
        case .name: nil
        }
    }
}
