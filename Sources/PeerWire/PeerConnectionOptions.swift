import TorrentModel

/// How a `PeerConnection` behaves: what we advertise, how much we accept, and its timers.
public struct PeerConnectionOptions: Hashable, Sendable {
    public static let nanosecondsPerSecond: UInt64 = 1_000_000_000

    /// The reserved bits we send; a feature is used only when the peer sets the same bit.
    public var reserved: ReservedBits = [.fastExtension, .extensionProtocol]
    /// How many of the peer's requests we queue (the `reqq` we advertise in the BEP 10 handshake).
    /// Beyond it a request is rejected (fast extension) or ends the connection (there is no other way to
    /// refuse one in BEP 3).
    public var maximumIncomingRequests = 500
    /// How many requests we keep outstanding to the peer, cancelled ones still awaiting an answer
    /// included. libtorrent caps its queue at 500 blocks, which is about 3 s of a gigabit link.
    public var maximumOutgoingRequests = 500
    /// How many of the peer's requests we may refuse in a row (while choking it, or with a full queue)
    /// before we treat it as a flood. Requests sent before our choke reached the peer are refused too, so
    /// this allows for a full queue of them.
    public var maximumConsecutiveRefusedRequests = 1000
    /// The most allowed-fast pieces we remember from the peer and grant to it (BEP 6 suggests 10).
    public var maximumAllowedFastPieces = 32
    /// How long the peer has to complete its handshake after `start`.
    public var handshakeTimeoutNanoseconds: UInt64 = 20 * nanosecondsPerSecond
    /// How long we stay silent before sending a keep-alive. BEP 3 peers send one every two minutes and
    /// some time out soon after, so we send well within that.
    public var keepAliveIntervalNanoseconds: UInt64 = 60 * nanosecondsPerSecond
    /// How long the peer may send nothing at all (not even a keep-alive) before we give up on it.
    public var silenceTimeoutNanoseconds: UInt64 = 180 * nanosecondsPerSecond
    /// Without the fast extension, how long after we cancel a request (or a choke drops it) its block may
    /// still arrive without being a protocol violation. With the fast extension there is no such window:
    /// BEP 6 promises exactly one answer to every request, cancelled or not, however late.
    public var cancelGraceNanoseconds: UInt64 = 30 * nanosecondsPerSecond
    /// When set, a peer with another id is refused (BEP 3: the initiator may know whom it dials).
    public var expectedPeerID: PeerID?
    /// The most bytes `outbound` may hold when the peer's input makes us queue more (rejects, keep-alives).
    /// A peer that sends requests and cancels but never reads would otherwise grow it without end.
    public var maximumQueuedOutboundBytes = 8 << 20
    /// Framing limits.
    public var limits = WireLimits()

    public init() {}
}
