import Glibc
import Hashing
import LocalDiscovery
import TorrentModel
import URing

/// What torrents on any reactor use to reach Local Service Discovery (BEP 14), which lives on the
/// engine's first reactor: they subscribe to an infohash, and peers heard on the LAN for it come back
/// to them as commands on their own reactor; with an announce port, we are announced on the LAN now and
/// every 5 minutes.
public final class LocalDiscoveryHandle: DiscoveryHandle {
    typealias Service = LocalDiscoveryService
    let inbox: ReactorInbox

    init(inbox: ReactorInbox) {
        self.inbox = inbox
    }
}

/// The engine's Local Service Discovery on a reactor, one per address family: the pure `LocalDiscovery`
/// decides what to announce and which peers to pass on; this carries its datagrams on the ring through
/// the family's multicast socket.
///
/// Invariants: a datagram with an operation in flight is not touched until its completion; at most one
/// send is in flight (announces leave at most once a second); the service leaves its reactor only once
/// no operation is in flight and the socket is closed.
final class LocalDiscoveryService: ReactorService, DiscoveryService {
    static let owner: UInt8 = 8
    static let receiveCount = 2
    /// Receives use indexes below this; the one send uses this index.
    static let sendIndex = UInt32(receiveCount)
    static let tickNanoseconds: UInt64 = 500_000_000
    static let group = SocketAddress.ipv4(address: 0xEFC0_988F, port: LocalDiscoveryAnnounce.groupPort)
    static let ipv6Group = SocketAddress.ipv6(
        address: LocalDiscoveryAnnounce.ipv6GroupAddress, port: LocalDiscoveryAnnounce.groupPort)

    private(set) var tickDeadline: UInt64 = 0
    private(set) var hasLeftReactor = false

    private var discovery: LocalDiscovery
    private let fd: Int32
    /// The socket's family: which group announces go to, and the `Host` they name.
    private let isIPv6: Bool
    private let log: (String) -> Void
    private unowned(unsafe) var reactor: Reactor!
    private var tenant: UInt16 = 0
    private var receiving: [Datagram] = []
    private var receivesInFlight = 0
    private let sending = Datagram(capacity: LocalDiscoveryAnnounce.maximumEncodedBytes)
    private var sendInFlight = false
    private var subscribers: [InfoHash: PeerSubscribers] = [:]
    private var stopping = false
    private var loggedErrors: Set<Errno> = []

    init(discovery: LocalDiscovery, fd: Int32, isIPv6: Bool, log: @escaping (String) -> Void) {
        self.discovery = discovery
        self.fd = fd
        self.isIPv6 = isIPv6
        self.log = log
    }

    func attach(to reactor: Reactor, tenant: UInt16) {
        self.reactor = reactor
        self.tenant = tenant
        reactor.localDiscoveryServices.append(self)
        for index in 0..<Self.receiveCount {
            receiving.append(Datagram(capacity: LocalDiscoveryAnnounce.maximumDecodedBytes + 1))
            armReceive(index)
        }
        scheduleTick(now: reactor.now)
    }

    // MARK: Subscriptions

    static func all(on reactor: Reactor) -> [LocalDiscoveryService] { reactor.localDiscoveryServices }

    func subscribe(_ infoHash: InfoHash, key: HostKey, reply: ReactorInbox, announcePort: UInt16?) {
        guard !stopping else { return }
        subscribers[infoHash, default: PeerSubscribers()].insert(key, reply: reply)
        discovery.subscribe(infoHash, announcePort: announcePort, now: reactor.now)
        reactor.touch(tenant)
    }

    func unsubscribe(_ infoHash: InfoHash, key: HostKey) {
        subscribers[infoHash]?.remove(key)
        guard subscribers[infoHash]?.isEmpty ?? false else { return }
        subscribers[infoHash] = nil
        discovery.unsubscribe(infoHash)
    }

    // MARK: The reactor's calls

    func stop() {
        guard !stopping else { return }
        stopping = true
        // The receives in flight end with errors once the socket is shut down.
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        reactor.touch(tenant)
    }

    func tick(now: UInt64) {
        scheduleTick(now: now)
    }

    private func scheduleTick(now: UInt64) {
        guard !hasLeftReactor else { return }
        tickDeadline = now + Self.tickNanoseconds
        reactor.schedule(tenant, at: tickDeadline)
    }

    func service(now: UInt64) {
        if !stopping { sendDueAnnounce(now: now) }
        guard stopping, !hasLeftReactor, receivesInFlight == 0, !sendInFlight else { return }
        Glibc.close(fd)
        reactor.localDiscoveryServices.removeAll { $0 === self }
        hasLeftReactor = true
    }

    func handle(_ completion: Completion, now: UInt64) {
        guard completion.slot.owner == Self.owner else { return }
        switch completion.token.kind {
        case .receiveMessage:
            receivesInFlight -= 1
            let index = Int(completion.slot.index)
            guard !stopping, index < receiving.count else { return }
            if completion.result >= 0 {
                received(receiving[index], result: completion.result, now: now)
            } else {
                logOnce("receive", Errno(rawValue: -completion.result))
            }
            armReceive(index)
        case .sendMessage:
            sendInFlight = false
            if completion.result < 0 { logOnce("send", Errno(rawValue: -completion.result)) }
        default:
            break
        }
    }

    // MARK: Datagrams

    private func received(_ datagram: Datagram, result: Int32, now: UInt64) {
        datagram.received(result)
        guard !datagram.wasTruncated, let source = datagram.peer else { return }
        let address: LocalDiscovery.Address =
            switch source {
            case .ipv4(let address, _): .ipv4(address)
            case .ipv6(let address, _): .ipv6(address)
            }
        var byTorrent: [InfoHash: [SocketAddress]] = [:]
        for peer in discovery.received(datagram.bytes, from: address, now: now) {
            let socketAddress: SocketAddress =
                switch peer.address {
                case .ipv4(let address): .ipv4(address: address, port: peer.port)
                case .ipv6(let address): .ipv6(address: address, port: peer.port)
                }
            byTorrent[peer.infoHash, default: []].append(socketAddress)
        }
        for (infoHash, peers) in byTorrent {
            subscribers[infoHash]?.deliver(peers)
        }
    }

    private func sendDueAnnounce(now: UInt64) {
        guard !sendInFlight, let announce = discovery.nextAnnounce(now: now),
            sending.set(announce.encoded(ipv6: isIPv6), to: isIPv6 ? Self.ipv6Group : Self.group)
        else { return }
        do {
            try reactor.ring.enqueue(
                .sendDatagram(fd: fd, sending),
                for: OperationSlot(owner: Self.owner, tenant: tenant, index: Self.sendIndex, generation: 1))
            sendInFlight = true
        } catch {
            log("lsd: cannot send an announce: \(error)")
        }
    }

    private func armReceive(_ index: Int) {
        guard !stopping else { return }
        do {
            try reactor.ring.enqueue(
                .receiveDatagram(fd: fd, receiving[index]),
                for: OperationSlot(owner: Self.owner, tenant: tenant, index: UInt32(index), generation: 1))
            receivesInFlight += 1
        } catch {
            log("lsd: cannot arm a receive: \(error)")
        }
    }

    private func logOnce(_ call: String, _ errno: Errno) {
        if loggedErrors.insert(errno).inserted { log("lsd: \(call): \(errno) (said once)") }
    }
}
