import TorrentModel

/// BEP 11 peer exchange with one connected peer: what to tell it, and what to believe of what it tells
/// us. Pure bookkeeping: the caller passes the current peer set and the time, and sends or uses what
/// comes back.
///
/// Sending: ``nextMessage(connectedPeers:now:)`` diffs the peers we are connected to against what this
/// peer has already been told, at most once per ``minimumSendInterval`` and at most
/// ``PexMessage/maximumContactsPerMessage`` added and dropped per message; what does not fit waits for the
/// next message. Only membership is tracked: a peer whose flags change is not announced again.
///
/// Receiving: ``receive(_:now:)`` accepts at most one message per ``minimumReceiveInterval`` and turns it
/// into candidate addresses, without the unusable ones (port 0, unroutable hosts, our own hosts,
/// duplicates of one host, contacts also listed as dropped).
public struct PexState: Sendable {
    /// BEP 11: no more than one message a minute.
    public static let minimumSendInterval: Duration = .seconds(60)
    /// The shortest gap between two messages we accept from the peer. Half the BEP's interval, so that a
    /// compliant sender whose timer runs a little early is never refused.
    public static let minimumReceiveInterval: Duration = .seconds(30)

    /// The peer this state talks to, as we would list it; never advertised to itself.
    public let recipient: PeerAddress?
    /// Our own hosts (from `yourip`, our listening interfaces): a peer at one of them is us.
    public var ownHosts: Set<PeerAddress.Host>

    /// What the peer has been told is connected, with the flags it was told.
    private var advertised: [PeerAddress: PexFlags] = [:]
    private var lastSent: Instant?
    private var lastAccepted: Instant?

    /// - Parameters:
    ///   - recipient: the peer's address, if known, so it is never told about itself.
    ///   - ownHosts: our own hosts, so that we never take ourselves for a candidate.
    public init(recipient: PeerAddress? = nil, ownHosts: Set<PeerAddress.Host> = []) {
        self.recipient = recipient
        self.ownHosts = ownHosts
    }

    /// The message to send the peer now, or nil when it is too soon or there is nothing new.
    ///
    /// - Parameter connectedPeers: the peers we are connected to, by the address others can reach them
    ///   at, with their flags.
    public mutating func nextMessage(connectedPeers: [PeerAddress: PexFlags], now: Instant) -> PexMessage? {
        if let lastSent, now.nanoseconds(since: lastSent) < Self.minimumSendInterval.nanosecondCount {
            return nil
        }
        let limit = PexMessage.maximumContactsPerMessage
        let added = connectedPeers.keys
            .filter { $0 != recipient && advertised[$0] == nil }
            .sorted().prefix(limit)
            .map { PexPeer(address: $0, flags: connectedPeers[$0] ?? []) }
        let dropped = advertised.keys.filter { connectedPeers[$0] == nil }.sorted().prefix(limit)
        guard !added.isEmpty || !dropped.isEmpty else { return nil }
        for peer in added { advertised[peer.address] = peer.flags }
        for address in dropped { advertised[address] = nil }
        lastSent = now
        return PexMessage(added: added, dropped: Array(dropped))
    }

    /// What a received message yields.
    public enum Receipt: Hashable, Sendable {
        /// The message was accepted: `candidates` are addresses worth trying (at most one per host),
        /// `dropped` are those the peer is no longer connected to.
        case accepted(candidates: [PexPeer], dropped: [PeerAddress])
        /// The message came sooner than ``PexState/minimumReceiveInterval`` after the last one accepted
        /// and was ignored.
        case rateLimited
    }

    /// Accepts or ignores a message from the peer.
    public mutating func receive(_ message: PexMessage, now: Instant) -> Receipt {
        if let lastAccepted,
            now.nanoseconds(since: lastAccepted) < Self.minimumReceiveInterval.nanosecondCount
        {
            return .rateLimited
        }
        lastAccepted = now
        let dropped = Set(message.dropped)
        var hostsSeen: Set<PeerAddress.Host> = []
        let candidates = message.added.filter { peer in
            let address = peer.address
            guard address.port != 0, !address.host.isUnroutable, !ownHosts.contains(address.host),
                !dropped.contains(address)
            else { return false }
            return hostsSeen.insert(address.host).inserted
        }
        return .accepted(candidates: candidates, dropped: message.dropped)
    }
}
