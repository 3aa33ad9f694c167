import Hashing
import TorrentModel
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
    private let key: HostKey
    private let infoHash: InfoHash
    /// What the session that rested last handed on (nil before the first rest).
    var carry: RestCarry?
    private let inbox: IncomingInbox?
    /// Wakes and ends the torrent. Told directly rather than through closures: three closures and
    /// their captures were 150 bytes of every torrent at rest.
    private let engine: Engine
    private unowned(unsafe) var reactor: Reactor!
    private var tenant: UInt16 = 0
    private(set) var hasLeftReactor = false

    init(key: HostKey, infoHash: InfoHash, inbox: IncomingInbox?, engine: Engine) {
        self.key = key
        self.infoHash = infoHash
        self.inbox = inbox
        self.engine = engine
    }

    var hostKey: HostKey? { key }

    /// Its one timer: its trackers' next announce (any other deadline popped for its number was
    /// someone else's).
    var tickDeadline: UInt64 { carry?.wakeAt ?? .max }
    func isReceivingBlocks(now: UInt64) -> Bool { false }

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
        engine.wake(key.id, run: key.run, standIn: self, on: reactor)
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
        // The DHT and local discovery kept announcing it while it rested.
        engine.leaveDiscovery(infoHash, key: key)
        engine.ended(key.id, run: key.run, outcome: .success(.interrupted))
    }

    /// A seed does not need peers: those who want it connect.
    func peersDiscovered(_ peers: [SocketAddress], now: UInt64) {}
}
