import TorrentModel

/// Local Service Discovery (BEP 14) without I/O: which announces to multicast and when, and which
/// peers heard on the group go to which torrent.
///
/// The caller subscribes torrents, sends the datagrams ``nextAnnounce(now:)`` returns to the group
/// and hands every datagram received to ``received(_:from:now:)``.
///
/// Invariants: a torrent is announced when subscribed and then every ``Configuration/announceInterval``;
/// at most one announce leaves per ``Configuration/messageSpacing`` whatever the number of torrents
/// (several due torrents with the same port share one message); peers heard are passed on, never kept,
/// beyond a bounded table that stops the same peer being passed on again and again.
public struct LocalDiscovery: Sendable {
    public struct Configuration: Sendable {
        /// BEP 14: announce each torrent every 5 minutes.
        public var announceIntervalNanoseconds: UInt64 = 5 * 60 * 1_000_000_000
        /// The least time between two of our messages (BEP 14 asks for no more than one per minute
        /// for a torrent; this bounds them all together).
        public var messageSpacingNanoseconds: UInt64 = 1_000_000_000
        /// Announces read per second at most; the rest are dropped unread (a flood costs little).
        public var maximumReceivedPerSecond = 64
        /// A peer already passed on for a torrent is not passed on again within this.
        public var repeatNanoseconds: UInt64 = 60 * 1_000_000_000
        /// Peers remembered for `repeatNanoseconds` at most.
        public var maximumRemembered = 1024

        public init() {}
    }

    /// Where an announce came from: the datagram's source address.
    public enum Address: Hashable, Sendable {
        /// In host byte order.
        case ipv4(UInt32)
        /// 16 bytes, in network order.
        case ipv6([UInt8])
    }

    /// A peer heard for a subscribed torrent: its address (the datagram's source) and TCP port.
    public struct Peer: Hashable, Sendable {
        public var infoHash: InfoHash
        public var address: Address
        public var port: UInt16

        public init(infoHash: InfoHash, address: Address, port: UInt16) {
            self.infoHash = infoHash
            self.address = address
            self.port = port
        }
    }

    private struct Subscription {
        /// Nil: only listening (we take no connections, so there is nothing to announce).
        var announcePort: UInt16?
        var nextAnnounce: UInt64
    }

    public let configuration: Configuration
    /// Ours, in every announce we send; announces carrying it are our own, looped back.
    public let cookie: String
    private let infoHashesPerMessage: Int
    private var subscriptions: [InfoHash: Subscription] = [:]
    private var lastSent: UInt64?
    private var receivedWindowStart: UInt64 = 0
    private var receivedInWindow = 0
    private var passedOn: [Peer: UInt64] = [:]

    public init(cookie: String, configuration: Configuration = Configuration()) {
        self.cookie = cookie
        self.configuration = configuration
        infoHashesPerMessage = LocalDiscoveryAnnounce.infoHashCapacity(cookie: cookie)
    }

    public var subscriptionCount: Int { subscriptions.count }

    /// Starts announcing `infoHash` with `announcePort` (at the next message; nil: listen only) and
    /// passing on peers heard for it. Subscribing again with the same port changes nothing.
    public mutating func subscribe(_ infoHash: InfoHash, announcePort: UInt16?, now: UInt64) {
        if let existing = subscriptions[infoHash], existing.announcePort == announcePort { return }
        subscriptions[infoHash] = Subscription(announcePort: announcePort, nextAnnounce: now)
    }

    public mutating func unsubscribe(_ infoHash: InfoHash) {
        subscriptions[infoHash] = nil
    }

    /// The announce to send now, if one is due and the spacing allows: every due torrent announced on
    /// the port of the most overdue, as many as fit in one message.
    public mutating func nextAnnounce(now: UInt64) -> LocalDiscoveryAnnounce? {
        if let lastSent, now - lastSent < configuration.messageSpacingNanoseconds { return nil }
        let due = subscriptions.filter { $0.value.announcePort != nil && $0.value.nextAnnounce <= now }
        guard let first = due.min(by: { $0.value.nextAnnounce < $1.value.nextAnnounce }),
            let port = first.value.announcePort
        else { return nil }
        let chosen = due.filter { $0.value.announcePort == port }
            .sorted { $0.value.nextAnnounce < $1.value.nextAnnounce }
            .prefix(infoHashesPerMessage).map(\.key)
        for infoHash in chosen {
            subscriptions[infoHash]?.nextAnnounce = now + configuration.announceIntervalNanoseconds
        }
        lastSent = now
        return LocalDiscoveryAnnounce(port: port, infoHashes: chosen, cookie: cookie)
    }

    /// When ``nextAnnounce(now:)`` will next have something to send (nil: nothing to announce).
    public func nextAnnounceDeadline() -> UInt64? {
        guard let due = subscriptions.values.filter({ $0.announcePort != nil }).map(\.nextAnnounce).min()
        else { return nil }
        guard let lastSent else { return due }
        return max(due, lastSent + configuration.messageSpacingNanoseconds)
    }

    /// A datagram from the group: the peers it names for subscribed torrents, new or not passed on
    /// lately. Our own announces, anything that is not an announce, and datagrams past the rate are
    /// ignored.
    public mutating func received(
        _ datagram: some Collection<UInt8>, from sourceAddress: Address, now: UInt64
    ) -> [Peer] {
        if now - receivedWindowStart >= 1_000_000_000 {
            receivedWindowStart = now
            receivedInWindow = 0
        }
        guard receivedInWindow < configuration.maximumReceivedPerSecond else { return [] }
        receivedInWindow += 1
        guard let announce = try? LocalDiscoveryAnnounce(decoding: datagram),
            announce.cookie?.lowercased() != cookie.lowercased()
        else { return [] }
        var peers: [Peer] = []
        for infoHash in announce.infoHashes where subscriptions[infoHash] != nil {
            let peer = Peer(infoHash: infoHash, address: sourceAddress, port: announce.port)
            if let last = passedOn[peer], now - last < configuration.repeatNanoseconds { continue }
            remember(peer, now: now)
            peers.append(peer)
        }
        return peers
    }

    private mutating func remember(_ peer: Peer, now: UInt64) {
        if passedOn[peer] == nil && passedOn.count >= configuration.maximumRemembered {
            passedOn = passedOn.filter { now - $0.value < configuration.repeatNanoseconds }
            if passedOn.count >= configuration.maximumRemembered,
                let oldest = passedOn.min(by: { $0.value < $1.value })
            {
                passedOn[oldest.key] = nil
            }
        }
        passedOn[peer] = now
    }
}
