import DHT
import Dispatch
import Glibc
import Hashing
import Synchronization
import TorrentModel
import URing

/// How an engine runs its DHT (BEP 5): one UDP socket for every torrent, per address family (BEP 32
/// keeps an IPv4 and an IPv6 DHT apart).
public struct DHTOptions: Sendable {
    /// Where each family's socket is bound, at most one address per family (port 0: the engine's
    /// listening port, or any free port when that is taken).
    public private(set) var bindAddresses: [SocketAddress]
    /// Routers to join through, as HOST:PORT (names resolved off the reactor threads).
    public var bootstrap: [String]
    /// Where the routing table is kept between runs (nil: not kept).
    public var statePath: String?
    /// The node's settings (tests shorten timers).
    public var configuration = DHTConfiguration()

    /// The routers every client knows.
    public static let publicRouters = [
        "router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881",
        "dht.libtorrent.org:25401",
    ]

    public init(
        bindAddresses: [SocketAddress], bootstrap: [String] = Self.publicRouters, statePath: String? = nil
    ) {
        self.bindAddresses = []
        self.bootstrap = bootstrap
        self.statePath = statePath
        for address in bindAddresses { bind(address) }
    }

    /// Binds the DHT of `address`'s family there, in place of the address it had.
    public mutating func bind(_ address: SocketAddress) {
        bindAddresses.removeAll { $0.family == address.family }
        bindAddresses.append(address)
    }
}

/// What torrents on any reactor use to reach the DHT, which lives on the engine's first reactor: they
/// subscribe to an infohash and peers found for it (in either family's DHT) come back to them as
/// commands on their own reactor; with an announce port, we are announced too (again every 30 min).
public final class DHTHandle: DiscoveryHandle {
    typealias Service = DHTService
    let inbox: ReactorInbox
    /// Where the sockets are bound, one per family (for reports and tests).
    public let boundAddresses: [SocketAddress]

    init(inbox: ReactorInbox, boundAddresses: [SocketAddress]) {
        self.inbox = inbox
        self.boundAddresses = boundAddresses
    }
}

/// The engine's DHT node on a reactor: the pure `DHTNode` decides; this carries its datagrams on the
/// ring through one unconnected UDP socket, runs its timer, and hands peers to subscribed torrents.
///
/// Invariants: every datagram buffer with an operation in flight stays in `receiving` or `sends` until
/// its completion; the service leaves its reactor only once none is in flight and the socket is
/// closed.
final class DHTService: ReactorService, DiscoveryService {
    static let owner: UInt8 = 6
    static let receiveCount = 4
    static let tickNanoseconds: UInt64 = 250_000_000
    /// How often a subscribed infohash is looked up again while nothing announces it.
    static let relookupNanoseconds: UInt64 = 5 * 60 * 1_000_000_000
    /// While the table holds fewer nodes than a bucket, lookups (and announces) found too few nodes to
    /// trust: they are repeated this often.
    static let unsettledRelookupNanoseconds: UInt64 = 5_000_000_000

    private struct Subscription {
        var subscribers = PeerSubscribers()
        var announcePort: UInt16?
        /// Nil: due at the next tick.
        var lastLookup: UInt64?
    }

    private(set) var tickDeadline: UInt64 = 0
    private(set) var hasLeftReactor = false

    private var node: DHTNode
    private let fd: Int32
    private let log: (String) -> Void
    private unowned(unsafe) var reactor: Reactor!
    private var tenant: UInt16 = 0
    private var output = DHTOutput()
    private var receiving: [Datagram] = []
    private var receivesInFlight = 0
    /// KRPC messages stay well under 1,500 bytes.
    private var sends = DatagramSendQueue<Void>(datagramCapacity: 1500)
    private var droppedSends = 0
    private var subscriptions: [InfoHash: Subscription] = [:]
    private var stopping = false
    private var loggedReceiveErrors: Set<Errno> = []

    init(node: DHTNode, fd: Int32, log: @escaping (String) -> Void) {
        self.node = node
        self.fd = fd
        self.log = log
    }

    /// What to keep for the next run: our id and the table's nodes.
    var savedState: DHTSavedState { node.savedState(now: Instant(nanoseconds: reactor.now)) }

    var family: DHTAddressFamily { node.configuration.family }

    var routingTableNodeCount: Int { node.routingTableNodeCount }

    func attach(to reactor: Reactor, tenant: UInt16) {
        self.reactor = reactor
        self.tenant = tenant
        reactor.dhtServices.append(self)
        for index in 0..<Self.receiveCount {
            receiving.append(Datagram(capacity: 1500))
            armReceive(index)
        }
        let now = reactor.now
        node.bootstrap(now: Instant(nanoseconds: now), into: &output)
        scheduleTick(now: now)
        reactor.touch(tenant)
    }

    /// Routers of the other family are left out.
    func addBootstrap(_ endpoints: [SocketAddress]) {
        node.addBootstrapEndpoints(endpoints.compactMap(\.dhtEndpoint))
        node.bootstrap(now: Instant(nanoseconds: reactor.now), into: &output)
        // Lookups made before the routers were known reached no one: the next tick repeats them.
        for infoHash in subscriptions.keys { subscriptions[infoHash]?.lastLookup = nil }
        reactor.touch(tenant)
    }

    func addSavedNodes(_ nodes: [DHTNodeInfo]) { node.addSavedNodes(nodes) }

    /// The other family's node on this reactor, if the engine runs both (BEP 32).
    private var sibling: DHTService? { reactor.dhtServices.first { $0 !== self } }

    // MARK: Subscriptions

    static func all(on reactor: Reactor) -> [DHTService] { reactor.dhtServices }

    func subscribe(_ infoHash: InfoHash, key: HostKey, reply: ReactorInbox, announcePort: UInt16?) {
        guard !stopping else { return }
        let now = reactor.now
        var subscription = subscriptions[infoHash] ?? Subscription()
        subscription.subscribers.insert(key, reply: reply)
        if let announcePort, subscription.announcePort != announcePort {
            subscription.announcePort = announcePort
            node.startAnnouncing(infoHash, port: announcePort, now: Instant(nanoseconds: now), into: &output)
        } else {
            node.findPeers(for: infoHash, now: Instant(nanoseconds: now), into: &output)
        }
        subscription.lastLookup = now
        subscriptions[infoHash] = subscription
        reactor.touch(tenant)
    }

    func unsubscribe(_ infoHash: InfoHash, key: HostKey) {
        guard var subscription = subscriptions[infoHash] else { return }
        subscription.subscribers.remove(key)
        if subscription.subscribers.isEmpty {
            subscriptions[infoHash] = nil
            node.stopAnnouncing(infoHash)
        } else {
            subscriptions[infoHash] = subscription
        }
    }

    // MARK: The reactor's calls

    func stop() {
        guard !stopping else { return }
        stopping = true
        // The receives in flight end with errors once the socket is shut down; the socket is closed
        // when the last operation has completed.
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        reactor.touch(tenant)
    }

    func tick(now: UInt64) {
        if !stopping {
            let instant = Instant(nanoseconds: now)
            // BEP 32: while the other family's table is thin, our lookups fetch nodes for it.
            node.wantsOtherFamilyNodes =
                sibling.map {
                    $0.node.liveRoutingTableNodeCount(now: instant) < $0.node.configuration.routing.bucketSize
                } ?? false
            node.tick(now: instant, into: &output)
            let settled =
                node.liveRoutingTableNodeCount(now: instant) >= node.configuration.routing.bucketSize
            let interval = settled ? Self.relookupNanoseconds : Self.unsettledRelookupNanoseconds
            // A subscription made during this pass read a later clock than `now`: it is not due (and
            // the unsigned difference would trap; it took a daemon down once).
            for (infoHash, var subscription) in subscriptions
            where subscription.lastLookup.map({ now >= $0 && now - $0 >= interval }) ?? true {
                subscription.lastLookup = now
                subscriptions[infoHash] = subscription
                if let port = subscription.announcePort {
                    // Settled, the node re-announces on its own every 30 minutes (with a lookup).
                    if !settled { node.announce(infoHash, port: port, now: instant, into: &output) }
                } else {
                    node.findPeers(for: infoHash, now: instant, into: &output)
                }
            }
        }
        scheduleTick(now: now)
    }

    private func scheduleTick(now: UInt64) {
        guard !hasLeftReactor else { return }
        tickDeadline = now + Self.tickNanoseconds
        reactor.schedule(tenant, at: tickDeadline)
    }

    func service(now: UInt64) {
        if !stopping { perform() }
        guard stopping, !hasLeftReactor else { return }
        sends.removeQueued()
        guard receivesInFlight == 0, sends.inFlightCount == 0 else { return }
        Glibc.close(fd)
        reactor.dhtServices.removeAll { $0 === self }
        hasLeftReactor = true
    }

    func handle(_ completion: Completion, now: UInt64) {
        guard completion.slot.owner == Self.owner else { return }
        let index = Int(completion.slot.index)
        switch completion.token.kind {
        case .receiveMessage:
            receivesInFlight -= 1
            guard !stopping else { return }
            if completion.result >= 0, index < receiving.count {
                let datagram = receiving[index]
                datagram.received(completion.result)
                // A datagram cut short is not KRPC we can read (nodes send well under 1,500 bytes).
                if !datagram.wasTruncated, let source = datagram.peer?.dhtEndpoint {
                    node.received(
                        Array(datagram.bytes), from: source, now: Instant(nanoseconds: now), into: &output,
                        alongside: sibling?.node)
                }
            } else if completion.result < 0 {
                let errno = Errno(rawValue: -completion.result)
                if loggedReceiveErrors.insert(errno).inserted { log("dht: receive: \(errno) (said once)") }
            }
            armReceive(index)
        case .sendMessage:
            _ = sends.completed(index)
            // What waited for a free slot goes now.
            if !stopping { sendQueued() }
        default:
            break
        }
    }

    // MARK: Datagrams

    /// Carries out the node's output: datagrams go on the ring (or wait), found peers go to their torrents.
    private func perform() {
        for event in output.events {
            if case .nodeIDChanged(let old, let new, let address) = event {
                log(
                    "dht: our external address is \(address); node id \(old.hex) -> \(new.hex) (BEP 42), table kept"
                )
            }
            if case .otherFamilyNodes(let nodes) = event {
                sibling?.node.learnNodes(nodes)
                continue
            }
            guard case .peersFound(_, let infoHash, let peers) = event,
                let subscription = subscriptions[infoHash]
            else { continue }
            subscription.subscribers.deliver(peers.map(\.socketAddress))
        }
        for datagram in output.datagrams {
            guard sends.append(datagram.bytes, to: datagram.destination.socketAddress, tag: ()) else {
                droppedSends += 1
                if droppedSends == 1 { log("dht: the send queue is full; datagrams are dropped") }
                continue
            }
        }
        output.removeAll()
        sendQueued()
    }

    private func sendQueued() {
        sends.send(
            on: reactor.ring, fd: { _ in fd },
            slot: { OperationSlot(owner: Self.owner, tenant: tenant, index: UInt32($0), generation: 1) })
    }

    private func armReceive(_ index: Int) {
        guard !stopping else { return }
        do {
            try reactor.ring.enqueue(
                .receiveDatagram(fd: fd, receiving[index]),
                // Told from sends by the operation kind in the token.
                for: OperationSlot(owner: Self.owner, tenant: tenant, index: UInt32(index), generation: 1))
            receivesInFlight += 1
        } catch {
            log("dht: cannot arm a receive: \(error)")
        }
    }
}

extension SocketAddress {
    var dhtEndpoint: DHTEndpoint? {
        switch self {
        case .ipv4(let address, let port): DHTEndpoint(address: .v4(address), port: port)
        case .ipv6(let address, let port):
            DHTIPAddress(bytes: address).map { DHTEndpoint(address: $0, port: port) }
        }
    }
}

extension DHTEndpoint {
    var socketAddress: SocketAddress {
        switch address {
        case .v4(let value): .ipv4(address: value, port: port)
        case .v6: .ipv6(address: address.bytes, port: port)
        }
    }
}
