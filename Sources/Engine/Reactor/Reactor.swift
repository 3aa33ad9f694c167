import CLinux
import Dispatch
import Glibc
import Hashing
import Locking
import Synchronization
import TorrentModel
import URing

/// How a reactor is set up.
public struct ReactorOptions: Sendable {
    /// Submission queue entries of the ring every hosted torrent shares.
    public var ringEntries: UInt32 = 512
    /// Optional io_uring features to leave unused.
    public var disabledRingFeatures: RingFeatures = []
    /// Hashing threads of this reactor (default: one per core).
    public var hashThreads = HashPool.coreCount
    /// Receive buffers shared by every connection of every torrent on the reactor (64 KiB each), at
    /// most; the kernel is given `initialReceiveBufferCount` at first and more each time they run out.
    /// Each is parsed and given back in the loop that received it, so about a loop's data is held at
    /// once; when they run out a receive ends (`ENOBUFS`) and is armed again, the data waiting in the
    /// socket. A downloading loop waits for 64 completions (`completionBatch`), each of which may
    /// hold one, so 128 leaves room: 1 GiB from 4 loopback seeders took 1.12 CPU s with 128 (8 MiB)
    /// against 1.16 with 64 (10 runs each, 2026-12-05); its times were within the spread of 256's
    /// (16 MiB).
    public var receiveBufferCount = 128
    public var initialReceiveBufferCount = 16
    /// Where the reactor's own services (the shared UDP tracker socket) say what went wrong.
    public var log: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// One thread's event loop, shared by every torrent placed on it: the ring, the hashing workers, the
/// receive buffers, the timers and a command inbox for other threads.
///
/// Completions are routed by the tenant in their token (a torrent's number on this reactor; 0 is the
/// reactor's own), then by the torrent to the subsystem the owner byte names. Hash results carry the
/// tenant in bits 32–47 of their token. Each loop wakes for the ring (or a timer, or the inbox), hands
/// every completion and hash result to its torrent, then lets each torrent that was touched send what
/// it queued, and ticks the torrents whose timer is due. A torrent at rest costs nothing per loop: it
/// is visited only when something happened to it or its timer fell due.
///
/// Invariants: everything here runs on the thread that created the reactor (the ring requires it);
/// other threads reach it only through ``submit(_:)``. A tenant number is reused only after every
/// other free number was (first in, first out), so a late completion of a removed torrent finds no
/// one, or a torrent whose own tables reject its stale generation.
public final class Reactor {
    static let peerOwner: UInt8 = 1
    static let listenerOwner: UInt8 = 4
    static let receiveGroup: UInt16 = 1
    static let receiveBufferBytes = 64 * 1024
    /// Tenant numbers fit in 16 bits of a token; 0 is the reactor's own.
    static let maximumTenants = 0xffff

    public let ring: Ring
    let hashers: HashPool
    /// Receive buffers for every connection on this reactor (nil: the kernel lacks the features).
    let providedBuffers: ProvidedBufferRing?
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    /// Runs the ring and keeps the time in a deterministic simulation (nil: the kernel and the clock).
    private let simulator: (any RingSimulator)?
    /// The simulation's clock, for the torrents' own rate limiters (nil: they read the real one).
    let simulatedClock: (@Sendable () -> Instant)?

    private var torrents: [(any ReactorTenant)?] = [nil]
    /// Engine torrents by their key, for commands.
    private var tenantsByKey: [HostKey: UInt16] = [:]
    /// Every torrent is being stopped: one that arrives now stops at once.
    private var stopping = false
    /// Free tenant numbers, oldest first.
    private var freeTenants: [UInt16] = []
    private var freeTenantsHead = 0
    /// Tenants something happened to during this loop, each once.
    private var touched: [UInt16] = []
    private var isTouched: [Bool] = [false]
    /// Timer deadlines: (when, tenant). A popped entry whose tenant has since moved its timer is ignored.
    private var timers = TimerHeap()
    private let inbox: ReactorInbox
    /// Blocking chores (reading and saving resume data, looking at files) in the order asked, off the
    /// reactor's thread.
    private let chores = DispatchQueue(label: "potluck.reactor.chores")
    private var commands: [@Sendable (Reactor) -> Void] = []
    /// In a simulation, chores done inline whose results the next loop hands back.
    private var choresDone: [(Reactor) -> Void] = []
    /// The engine's listening socket, on the reactor that routes incoming peers (nil elsewhere).
    private var router: HandshakeRouter?
    private var routerTickAt: UInt64 = 0
    private var rangTenants: [UInt16] = []
    /// BEP 15 for every torrent here, made at first use.
    private var udpTrackerStorage: UDPTrackerTransport?
    /// Scrapes for every torrent here, gathered per tracker; made at first use.
    private var scrapeStorage: ScrapeBatcher?
    private var scrapeTickAt: UInt64 = 0
    private let log: @Sendable (String) -> Void
    /// The engine's DHT nodes, one per address family (BEP 32), on the reactor that hosts them (none
    /// elsewhere).
    var dhtServices: [DHTService] = []
    /// The engine's Local Service Discovery, one per address family, on the reactor that hosts it (none
    /// elsewhere).
    var localDiscoveryServices: [LocalDiscoveryService] = []
    /// Torrents waiting for their turn to check their data, oldest first (see `queueCheck`).
    private var waitingChecks: [(tenant: UInt16, costBytes: Int)] = []
    private var waitingChecksHead = 0
    private var checksRunning = 0
    /// The most checks that ran at once (for tests and reports).
    private(set) var peakChecksRunning = 0
    private var checkBytesRunning = 0
    private var startingChecks = false
    /// When to give freed pages back to the kernel (see `memoryFreed`).
    private var trimDueAt: UInt64?

    /// Creates the ring and the hashing workers on the calling thread, which must be the one to run it.
    public convenience init(options: ReactorOptions = ReactorOptions()) throws(DownloadError) {
        let ring: Ring
        do {
            ring = try Ring(
                options: RingOptions(
                    entries: options.ringEntries, disabledFeatures: options.disabledRingFeatures))
        } catch {
            throw .ringUnavailable(error)
        }
        try self.init(ring: ring, options: options, simulator: nil)
    }

    /// A reactor on simulated sockets, disks and time (deterministic tests): `simulator` runs the
    /// ring's operations and keeps the clock; pieces are hashed as they are submitted and blocking
    /// chores run on the reactor's thread, so nothing depends on another thread's timing.
    convenience init(simulator: any RingSimulator, options: ReactorOptions = ReactorOptions()) {
        var options = options
        options.hashThreads = 0
        // Cannot throw: no thread is started.
        try! self.init(
            ring: Ring(simulator: simulator, entries: options.ringEntries), options: options,
            simulator: simulator)
    }

    private init(ring: Ring, options: ReactorOptions, simulator: (any RingSimulator)?) throws(DownloadError) {
        let waker = ring.waker
        do {
            hashers = try HashPool(threadCount: simulator == nil ? max(1, options.hashThreads) : 0) {
                waker.wake()
            }
        } catch {
            throw .threads(error)
        }
        self.ring = ring
        self.simulator = simulator
        if let simulator {
            // Read on the reactor's thread only, where the simulation runs.
            nonisolated(unsafe) let simulation = simulator
            simulatedClock = { Instant(nanoseconds: simulation.nanoseconds) }
        } else {
            simulatedClock = nil
        }
        inbox = ReactorInbox(waker: waker)
        if ring.features.contains([.providedBufferRing, .multishotReceive]) {
            providedBuffers = try? ProvidedBufferRing(
                ring: ring, group: Self.receiveGroup, bufferCount: max(1, options.receiveBufferCount),
                bufferSizeBytes: Self.receiveBufferBytes, initialCount: options.initialReceiveBufferCount)
        } else {
            providedBuffers = nil
        }
        started = clock.now
        log = options.log
    }

    deinit {
        hashers.shutdown()
    }

    /// Nanoseconds since the reactor started: the one clock of every torrent on it.
    public var now: UInt64 {
        if let simulator { return simulator.nanoseconds }
        let elapsed = clock.now - started
        return UInt64(elapsed.components.seconds) * 1_000_000_000
            + UInt64(elapsed.components.attoseconds / 1_000_000_000)
    }

    /// What other threads use to reach this reactor.
    public var doorbell: ReactorInbox { inbox }

    /// Tenants hosted now: torrents, and the DHT and local discovery on the reactor that has them.
    public var tenantCount: Int { torrents.count - 1 - (freeTenants.count - freeTenantsHead) }

    /// Torrents hosted now (their sessions or metadata fetches).
    public var torrentCount: Int { tenantCount - dhtServices.count - localDiscoveryServices.count }

    // MARK: Hosting

    /// Places `session` on this reactor and starts it; false when every tenant number is taken.
    @discardableResult
    func host(_ session: any ReactorTenant) -> Bool {
        let tenant: UInt16
        if freeTenantsHead < freeTenants.count {
            tenant = freeTenants[freeTenantsHead]
            freeTenantsHead += 1
            if freeTenantsHead == freeTenants.count {
                freeTenants.removeAll(keepingCapacity: true)
                freeTenantsHead = 0
            } else if freeTenantsHead >= 256 && freeTenantsHead * 2 >= freeTenants.count {
                // Torrents that rest and wake leave and come back for ever: the numbers taken go.
                freeTenants.removeFirst(freeTenantsHead)
                freeTenantsHead = 0
            }
        } else {
            guard torrents.count <= Self.maximumTenants else { return false }
            tenant = UInt16(torrents.count)
            torrents.append(nil)
            isTouched.append(false)
        }
        torrents[Int(tenant)] = session
        if let key = session.hostKey { tenantsByKey[key] = tenant }
        session.attach(to: self, tenant: tenant)
        if stopping { session.stop() }
        touch(tenant)
        return true
    }

    /// The engine torrent's session on this reactor, if it is here and past its metadata.
    func torrent(with key: HostKey) -> DownloadSession? {
        tenant(with: key) as? DownloadSession
    }

    /// Whatever runs the engine torrent on this reactor (its session, or its metadata fetch).
    func tenant(with key: HostKey) -> (any ReactorTenant)? {
        tenantsByKey[key].flatMap { torrents[safe: $0] }
    }

    /// Asks the torrent's timer to fire at `deadline` (replacing any earlier request).
    func schedule(_ tenant: UInt16, at deadline: UInt64) {
        timers.push(deadline: deadline, tenant: tenant)
    }

    /// Something happened to `tenant` outside a completion: it is serviced at the end of this loop.
    func touch(_ tenant: UInt16) {
        guard Int(tenant) < isTouched.count, !isTouched[Int(tenant)] else { return }
        isTouched[Int(tenant)] = true
        touched.append(tenant)
    }

    /// The one UDP socket (per address family) through which every torrent here asks its UDP trackers.
    var udpTrackers: UDPTrackerTransport {
        if let udpTrackerStorage { return udpTrackerStorage }
        let transport = UDPTrackerTransport(ring: ring, log: log)
        udpTrackerStorage = transport
        return transport
    }

    /// Where every torrent here sends its scrapes, to go out together with the others' for the same
    /// tracker.
    var scrapes: ScrapeBatcher {
        if let scrapeStorage { return scrapeStorage }
        let batcher = ScrapeBatcher(
            ring: ring, udp: udpTrackers, seed: UInt64.random(in: 0...UInt64.max), log: log)
        scrapeStorage = batcher
        return batcher
    }

    /// Runs `command` on the reactor thread at its next loop. Any thread.
    public func submit(_ command: @escaping @Sendable (Reactor) -> Void) {
        inbox.submit(command)
    }

    /// Runs `work` off the reactor's thread, after every chore asked for earlier, then `done` with its
    /// result on the reactor: the loop never waits on a disk's sync.
    func runChore<Result: Sendable>(
        _ work: @escaping @Sendable () -> Result, then done: @escaping @Sendable (Reactor, Result) -> Void
    ) {
        if simulator != nil {
            // Done at the next loop, as a command would be: the same order every run.
            let result = work()
            choresDone.append { reactor in done(reactor, result) }
            return
        }
        let inbox = self.inbox
        chores.async {
            let result = work()
            inbox.submit { reactor in done(reactor, result) }
        }
    }

    /// The torrent numbered `tenant`, if one is hosted as that number.
    func torrent(at tenant: UInt16) -> DownloadSession? { torrents[safe: tenant] as? DownloadSession }

    /// Accepts every torrent's peers on `listenerFD` (which the router now owns) and hands each to the
    /// torrent its handshake names, through `directory`.
    public func startRouting(listenerFD: Int32, directory: RouterDirectory, log: @escaping (String) -> Void) {
        router = HandshakeRouter(ring: ring, listenerFD: listenerFD, directory: directory, log: log)
        router?.start()
    }

    // MARK: Checking data on disk

    /// Checks at once: thousands of torrents started together would otherwise each hold descriptors
    /// and piece memory at the same time. A few in parallel keep the disk and the hashers busy.
    static let concurrentChecks = 16
    /// Piece memory that running checks may keep busy (one check always runs, however large).
    static let checkMemoryBytes = 256 << 20

    /// `tenant` wants to check its data: it is told to begin (`DownloadSession.beginCheck`) when a
    /// turn is free, now or once an earlier check ends.
    func queueCheck(_ tenant: UInt16, costBytes: Int) {
        waitingChecks.append((tenant, costBytes))
        startWaitingChecks()
    }

    /// A check that began has ended (finished, stopped, or its torrent failed).
    func checkEnded(costBytes: Int) {
        checksRunning -= 1
        checkBytesRunning -= costBytes
        startWaitingChecks()
    }

    private func startWaitingChecks() {
        // A check may end as it begins (nothing to read): the outer loop goes on with the next.
        guard !startingChecks else { return }
        startingChecks = true
        defer { startingChecks = false }
        while waitingChecksHead < waitingChecks.count, checksRunning < Self.concurrentChecks {
            let (tenant, cost) = waitingChecks[waitingChecksHead]
            guard checksRunning == 0 || checkBytesRunning + cost <= Self.checkMemoryBytes else { break }
            waitingChecksHead += 1
            // A torrent that left while waiting is skipped; its tenant number may be someone else's
            // now, who declines unless it waits too.
            guard let torrent = torrents[safe: tenant] as? DownloadSession else { continue }
            checksRunning += 1
            checkBytesRunning += cost
            peakChecksRunning = max(peakChecksRunning, checksRunning)
            if !torrent.beginCheck(now: now, costBytes: cost) {
                checksRunning -= 1
                checkBytesRunning -= cost
            }
        }
        if waitingChecksHead == waitingChecks.count {
            waitingChecks.removeAll(keepingCapacity: true)
            waitingChecksHead = 0
        }
    }

    // MARK: Memory

    /// A torrent here gave a session's memory back (a seed rested). malloc keeps freed memory for
    /// reuse: thousands of seeds resting together free tens of MiB that would stay in the process. A
    /// moment later, once the others have followed, the free pages go back to the kernel, off the
    /// reactor's thread.
    func memoryFreed() {
        if trimDueAt == nil { trimDueAt = now + Self.trimDelayNanoseconds }
    }

    private static let trimDelayNanoseconds: UInt64 = 2_000_000_000

    private func trimIfDue(now: UInt64) {
        guard let due = trimDueAt, now >= due else { return }
        trimDueAt = nil
        chores.async { _ = potluck_release_free_memory() }
    }

    // MARK: The loop

    /// Runs until `shouldExit` says so (checked every loop). `shouldStop` asks every torrent to stop
    /// (each finishes cleanly; the loop goes on until `shouldExit`).
    public func run(shouldStop: () -> Bool, until shouldExit: () -> Bool) throws(DownloadError) {
        var batchingCompletions = false
        while !shouldExit() {
            if !stopping && shouldStop() {
                stopping = true
                for case let torrent? in torrents { torrent.stop() }
            }
            let wait = waitNanoseconds()
            do {
                if batchingCompletions {
                    try ring.submitAndWait(
                        minimumCompletions: Self.completionBatch,
                        timeout: .nanoseconds(min(Self.completionBatchWaitNanoseconds, wait)))
                } else {
                    try ring.submitAndWait(minimumCompletions: 1, timeout: .nanoseconds(wait))
                }
            } catch {
                throw .io(error)
            }
            let now = self.now
            var receivingBlocks = false
            let handled = ring.drain { completion in
                let tenant = completion.slot.tenant
                if tenant == 0 {
                    switch completion.slot.owner {
                    case HandshakeRouter.owner: router?.handle(completion, now: now)
                    case UDPTrackerTransport.owner: udpTrackerStorage?.handle(completion, now: now)
                    case TrackerClient.owner: scrapeStorage?.handle(completion, now: now)
                    default: break
                    }
                    return
                }
                guard let torrent = torrents[safe: tenant] else {
                    // A late completion of a removed torrent: only a provided buffer needs giving back.
                    if let id = completion.bufferID { providedBuffers?.recycle(id) }
                    return
                }
                torrent.handle(completion, now: now)
                touch(tenant)
                receivingBlocks = receivingBlocks || torrent.isReceivingBlocks(now: now)
            }
            batchingCompletions = handled > 0 && receivingBlocks
            hashers.drainUnclaimed { result in
                let tenant = UInt16(truncatingIfNeeded: result.token >> 32)
                guard let torrent = torrents[safe: tenant] else {
                    preconditionFailure("a hash result outlived its torrent, which waits for its jobs")
                }
                torrent.hashCompleted(result, now: now)
                touch(tenant)
            }
            providedBuffers?.publishRecycled()
            inbox.operationsInFlight.store(ring.operationsInFlight, ordering: .relaxed)
            inbox.take(commands: &commands, rang: &rangTenants)
            for tenant in rangTenants { touch(tenant) }
            rangTenants.removeAll(keepingCapacity: true)
            for command in commands { command(self) }
            commands.removeAll(keepingCapacity: true)
            if !choresDone.isEmpty {
                let done = choresDone
                choresDone.removeAll()
                for chore in done { chore(self) }
            }
            // Commands read the clock themselves (`self.now`), later than this pass's `now`: what they
            // stamped must not lie in the future of the timers and services that follow.
            let later = self.now
            fireTimers(now: later)
            trimIfDue(now: later)
            if let router, later >= routerTickAt {
                routerTickAt = later + Self.routerTickNanoseconds
                router.tick(now: later)
            }
            if let scrapeStorage, scrapeStorage.isBusy, later >= scrapeTickAt {
                scrapeTickAt = later + ScrapeBatcher.tickNanoseconds
                scrapeStorage.tick(now: later)
            }
            serviceTouched(now: later)
        }
        closeUDPTrackers()
    }

    /// Once the torrents are gone (a caller may run the reactor again while some stay), the shared
    /// tracker socket closes when its receives have come back: at most a second's wait; a kernel that
    /// never answered would leave their buffers unfreed, not reused.
    private func closeUDPTrackers() {
        guard tenantCount == 0 else { return }
        scrapeStorage?.close()
        scrapeStorage = nil
        guard let transport = udpTrackerStorage else { return }
        transport.shutDown()
        let deadline = now + 1_000_000_000
        while transport.operationsInFlight > 0, now < deadline {
            do {
                try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(10))
            } catch {
                break
            }
            let now = self.now
            ring.drain { completion in
                if completion.slot.tenant == 0 && completion.slot.owner == UDPTrackerTransport.owner {
                    transport.handle(completion, now: now)
                } else if let id = completion.bufferID {
                    providedBuffers?.recycle(id)
                }
            }
        }
        transport.closeSockets()
        udpTrackerStorage = nil
    }

    /// While blocks arrive, the loop waits for this many completions (or the wait below) rather than
    /// one: waking for every receive completion (about 2,000 a second on a 1 Gbit/s link) cost CPU for
    /// nothing. Measured (1 Gbit/s links, 256 MiB): CPU per GiB 2.3–2.6 s → 1.4–1.6 s at the same
    /// throughput; on loopback (1 GiB) 1.05 → 0.96 s and faster. Requests are queued for far longer
    /// than the wait, so the peers never run dry. Not before blocks arrive: a start's handshakes,
    /// unchokes and first requests each waited out the batch (4 ms a step on loopback).
    private static let completionBatch = 64
    private static let completionBatchWaitNanoseconds: Int64 = 4_000_000

    /// The router's timeouts and accept retries are checked this often.
    private static let routerTickNanoseconds: UInt64 = 250_000_000

    /// Until the next timer, at most 100 ms, at least 1 ms.
    private func waitNanoseconds() -> Int64 {
        if !choresDone.isEmpty { return 0 }
        var wait: UInt64 = 100_000_000
        let now = self.now
        if let next = timers.earliest { wait = min(wait, next > now ? next - now : 0) }
        if router != nil { wait = min(wait, routerTickAt > now ? routerTickAt - now : 0) }
        if scrapeStorage?.isBusy == true { wait = min(wait, scrapeTickAt > now ? scrapeTickAt - now : 0) }
        return Int64(max(wait, 1_000_000))
    }

    private func fireTimers(now: UInt64) {
        while let (deadline, tenant) = timers.popDue(now: now) {
            guard let torrent = torrents[safe: tenant], torrent.tickDeadline == deadline else { continue }
            torrent.tick(now: now)
            touch(tenant)
        }
    }

    /// Lets every touched torrent act on what happened (send, change phase); a torrent that has
    /// finished, with nothing left in flight, leaves the reactor.
    private func serviceTouched(now: UInt64) {
        var index = 0
        // Servicing may touch more tenants (a torrent's actions never do today, but the list may grow).
        while index < touched.count {
            let tenant = touched[index]
            index += 1
            isTouched[Int(tenant)] = false
            guard let torrent = torrents[safe: tenant] else { continue }
            torrent.service(now: now)
            if torrent.hasLeftReactor {
                torrents[Int(tenant)] = nil
                // A torrent that rested, or woke, has already been succeeded under its key.
                if let key = torrent.hostKey, tenantsByKey[key] == tenant { tenantsByKey[key] = nil }
                freeTenants.append(tenant)
            }
        }
        touched.removeAll(keepingCapacity: true)
    }
}

/// What a reactor hosts as a tenant: a torrent's session, or the fetch of a magnet link's metadata
/// before it. Everything is called on the reactor's thread.
protocol ReactorTenant: AnyObject {
    /// The engine's name for it, by which commands find it (nil when run alone).
    var hostKey: HostKey? { get }
    /// When its timer is due (a popped timer for another deadline is stale).
    var tickDeadline: UInt64 { get }
    /// Whether blocks are arriving (the reactor batches completions then).
    func isReceivingBlocks(now: UInt64) -> Bool
    /// Whether it has left the reactor: nothing of it is in flight any more.
    var hasLeftReactor: Bool { get }
    /// Taken by `reactor` as `tenant`: starts.
    func attach(to reactor: Reactor, tenant: UInt16)
    /// A completion whose token names this tenant.
    func handle(_ completion: Completion, now: UInt64)
    /// A hash result whose token names this tenant.
    func hashCompleted(_ result: HashResult, now: UInt64)
    func tick(now: UInt64)
    /// After the completions of a loop: act on what changed.
    func service(now: UInt64)
    /// Finish cleanly, then leave.
    func stop()
    /// Peers found for it elsewhere (the DHT).
    func peersDiscovered(_ peers: [SocketAddress], now: UInt64)
}

/// An engine-wide service a reactor hosts beside the torrents (the DHT, local discovery): no engine
/// torrent's key, no pieces, no hash jobs, and no peers to be handed.
protocol ReactorService: ReactorTenant {}

extension ReactorService {
    var hostKey: HostKey? { nil }
    func isReceivingBlocks(now: UInt64) -> Bool { false }

    func hashCompleted(_ result: HashResult, now: UInt64) {
        preconditionFailure("\(Self.self) submits no hash jobs")
    }

    func peersDiscovered(_ peers: [SocketAddress], now: UInt64) {}
}

extension Array where Element == (any ReactorTenant)? {
    fileprivate subscript(safe tenant: UInt16) -> (any ReactorTenant)? {
        let index = Int(tenant)
        return index > 0 && index < count ? self[index] : nil
    }
}

/// How other threads reach a reactor: commands to run on it, and tenants whose routed connections
/// wait in their inbox. Each wakes the ring.
public final class ReactorInbox: Sendable {
    private struct State {
        var commands: [@Sendable (Reactor) -> Void] = []
        var rang: [UInt16] = []
    }

    private let state = Lock(State())
    private let waker: RingWaker
    /// The reactor's `Ring.operationsInFlight`, as of its last pass, for other threads to read.
    let operationsInFlight = Atomic<Int>(0)

    init(waker: RingWaker) { self.waker = waker }

    func submit(_ command: @escaping @Sendable (Reactor) -> Void) {
        state.withLock { $0.commands.append(command) }
        waker.wake()
    }

    /// `tenant` has something waiting for it (say, a routed connection).
    func ring(_ tenant: UInt16) {
        state.withLock { $0.rang.append(tenant) }
        waker.wake()
    }

    fileprivate func take(commands: inout [@Sendable (Reactor) -> Void], rang: inout [UInt16]) {
        state.withLock { state in
            commands.append(contentsOf: state.commands)
            state.commands.removeAll(keepingCapacity: true)
            rang.append(contentsOf: state.rang)
            state.rang.removeAll(keepingCapacity: true)
        }
    }
}

/// A binary min-heap of timer deadlines.
struct TimerHeap {
    private var entries: [(deadline: UInt64, tenant: UInt16)] = []

    var earliest: UInt64? { entries.first?.deadline }
    var count: Int { entries.count }

    mutating func push(deadline: UInt64, tenant: UInt16) {
        entries.append((deadline, tenant))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// The earliest entry if it is due.
    mutating func popDue(now: UInt64) -> (UInt64, UInt16)? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < entries.count && entries[left].deadline < entries[smallest].deadline {
                    smallest = left
                }
                if right < entries.count && entries[right].deadline < entries[smallest].deadline {
                    smallest = right
                }
                guard smallest != parent else { break }
                entries.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }
}
