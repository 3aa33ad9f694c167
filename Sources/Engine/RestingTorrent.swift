import Hashing
import URing

/// Stands in on its reactor for a seed that rested (see `DownloadSession+Rest.swift`): a small object
/// instead of a session. It keeps the torrent's `HostKey`, so commands, the DHT and local
/// discovery still find it, and its inbox of routed peers. A peer that arrives, a command that needs
/// a session, or its trackers' next announce wakes it: the engine places a new session from the
/// torrent's record, which takes over the inbox, the totals and the announce schedule. A stop ends
/// the torrent as a session's stop would (it has nothing to finish: its resume data vouched for every
/// piece when it rested).
///
/// One stand-in serves every rest of a run: the engine makes it when the run starts (see
/// `Engine.makeStandIn`), and it is hosted each time a session rests and leaves each time one wakes.
/// Sendable only to be handed to the reactor once: from then on it is touched on the reactor's thread
/// alone.
final class RestingTorrent: ReactorTenant, @unchecked Sendable {
    let hostKey: HostKey?
    /// What the session that rested last handed on (nil before the first rest).
    var carry: RestCarry?
    private let inbox: IncomingInbox?
    /// Places a session for the torrent on `reactor` (the engine's).
    private let wake: (RestingTorrent, Reactor) -> Void
    /// The torrent ended while resting.
    private let end: (Result<DownloadOutcome, DownloadError>) -> Void
    /// Leaves the DHT and local discovery, which kept announcing the torrent while it rested.
    private let unsubscribe: () -> Void
    private unowned(unsafe) var reactor: Reactor!
    private var tenant: UInt16 = 0
    private(set) var hasLeftReactor = false

    init(
        key: HostKey, inbox: IncomingInbox?, wake: @escaping (RestingTorrent, Reactor) -> Void,
        end: @escaping (Result<DownloadOutcome, DownloadError>) -> Void, unsubscribe: @escaping () -> Void
    ) {
        hostKey = key
        self.inbox = inbox
        self.wake = wake
        self.end = end
        self.unsubscribe = unsubscribe
    }

    /// Its one timer: its trackers' next announce (any other deadline popped for its number was
    /// someone else's).
    var tickDeadline: UInt64 { carry?.wakeAt ?? .max }
    var isDownloading: Bool { false }

    func attach(to reactor: Reactor, tenant: UInt16) {
        self.reactor = reactor
        self.tenant = tenant
        hasLeftReactor = false
        if let wakeAt = carry?.wakeAt { reactor.schedule(tenant, at: wakeAt) }
        // Rings at once if a peer arrived while the session was leaving.
        inbox?.attach(reactor.doorbell, tenant: tenant)
    }

    /// A late completion for a tenant number it took over: only a provided buffer needs giving back.
    func handle(_ completion: Completion, now: UInt64) {
        if let id = completion.bufferID { reactor.providedBuffers?.recycle(id) }
    }

    func hashCompleted(_ result: HashResult, now: UInt64) {
        preconditionFailure("a resting torrent submits no hash jobs")
    }

    /// The trackers' next announce is due.
    func tick(now: UInt64) {
        if let wakeAt = carry?.wakeAt, now >= wakeAt { wakeUp() }
    }

    /// Touched by its inbox's doorbell (or when placed): a peer waiting wakes the torrent.
    func service(now: UInt64) {
        if inbox?.hasWaiting == true { wakeUp() }
    }

    /// A session is needed (a peer, a command whose effect a session applies): the engine places one,
    /// which starts from the resume data, as a restart would, and this stand-in leaves.
    func wakeUp() {
        guard !hasLeftReactor else { return }
        hasLeftReactor = true
        reactor.touch(tenant)
        wake(self, reactor)
    }

    /// A client asked for an announce now (see `DownloadSession.reannounce`): the torrent wakes with
    /// its announce due (within the tracker's `min interval`). Without trackers there is nothing to do.
    func wakeToReannounce() {
        guard !hasLeftReactor, carry?.trackers != nil else { return }
        carry?.trackers?.announceNow(now: reactor.now)
        wakeUp()
    }

    func stop() {
        guard !hasLeftReactor else { return }
        hasLeftReactor = true
        reactor.touch(tenant)
        inbox?.close()
        unsubscribe()
        end(.success(.interrupted))
    }

    /// A seed does not need peers: those who want it connect.
    func peersDiscovered(_ peers: [SocketAddress], now: UInt64) {}
}
