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
    private let key: UInt32
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

    /// Nil when the torrent names no usable tracker (the reasons are logged).
    init?(
        ring: Ring, tenant: UInt16, trackers: [[String]], isPrivate: Bool, infoHash: InfoHash, peerID: PeerID,
        port: UInt16,
        seed: UInt64, extraCAFile: String? = nil, totals: @escaping () -> Totals,
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
        peerNameResolver = HostResolver(waker: ring.waker)
        client = TrackerClient(
            ring: ring, tenant: tenant, seed: random.next(), resolver: HostResolver(waker: ring.waker),
            extraCAFile: extraCAFile,
            log: log)
    }

    /// Begins the session: `started` goes out at the next ``tick(now:)``.
    func start(now: UInt64, isComplete: Bool) {
        scheduler.start(now: Instant(nanoseconds: now), isComplete: isComplete)
    }

    /// Peers learnt since the last call.
    func takePeers() -> [SocketAddress] {
        defer { discovered.removeAll(keepingCapacity: true) }
        return discovered
    }

    /// The download finished: `completed` is due (once).
    func downloadCompleted(now: UInt64) {
        scheduler.downloadCompleted(now: Instant(nanoseconds: now))
    }

    /// The announce list was edited. While the tracker that counts us stays (and none removed is being
    /// asked), the schedule goes on and the next announce walks the new tiers. Otherwise the swarm is
    /// joined afresh: `started` goes to the new tiers at once, and the tracker left behind is told
    /// `stopped` without waiting for its answer. An empty list stops announcing until trackers return.
    func replaceTrackers(_ trackers: [[String]], isComplete: Bool, now: UInt64) {
        tiers = TrackerTiers(
            announce: nil, announceList: trackers, isPrivate: tiers.isPrivate, random: &random)
        for rejected in tiers.rejectedURLs { log("tracker ignored: \(rejected)") }
        guard case .running = shutdown else { return }
        let kept = Set(tiers.allTrackers)
        let askingRemoved = inFlight.map { !kept.contains($0.url) } ?? false
        if let lastAnswered, kept.contains(lastAnswered), !askingRemoved { return }
        if let current = inFlight {
            inFlight = nil
            client.abandon(current.id)
            _ = client.takeFinished()
        }
        if startedAnswered, let lastAnswered, !kept.contains(lastAnswered),
            !client.needsResolution(lastAnswered)
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
        log("trackers edited: announcing to \(tiers.allTrackers.count) trackers")
    }

    /// Ask for more peers as soon as `min interval` allows (say, when every known peer is gone).
    func wantMorePeers(now: UInt64) {
        scheduler.requestAnnounce(now: Instant(nanoseconds: now))
    }

    /// A client asked to announce now: see ``AnnounceScheduler/announceNow(now:)``.
    func announceNow(now: UInt64) {
        scheduler.announceNow(now: Instant(nanoseconds: now))
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

    private func announce(_ event: AnnounceEvent, to url: TrackerURL, now: UInt64) {
        if client.needsResolution(url) {
            // Ask again at the next tick; the lookup runs off the reactor thread.
            retryEvent = event
            return
        }
        log("tracker \(url): announcing \(event)")
        inFlight = (client.begin(.announce(request(event)), url: url, now: now), url, event)
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
            case .failed(let failure):
                log("tracker \(current.url): \(current.event) failed: \(failure)")
                state = "tracker: error \(failure)"
                if current.event != .stopped, tiers.currentFailed() != nil {
                    retryEvent = current.event
                } else {
                    scheduler.announceFailed(now: instant)
                    tiers.restart()
                }
            default:
                break
            }
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
