/// Everything tunable about a ``DHTNode``; the defaults follow BEP 5 and common clients.
public struct DHTConfiguration: Hashable, Sendable {
    /// The family of the socket this node runs on (BEP 32: one routing table per family).
    public var family: DHTAddressFamily
    public var routing: RoutingTableOptions
    public var limits: KRPCLimits
    /// Queries a lookup keeps in flight: 4.
    public var alpha: Int
    /// After this long unanswered a lookup query stops counting against `alpha`: 1 s.
    public var softTimeoutNanoseconds: UInt64
    /// After this long unanswered a query has failed: 5 s.
    public var hardTimeoutNanoseconds: UInt64
    /// How often the write-token secret changes: 5 minutes.
    public var tokenRotationNanoseconds: UInt64
    /// How long an announced peer is kept: 30 minutes.
    public var peerLifetimeNanoseconds: UInt64
    /// Infohashes and peers per infohash stored for others.
    public var maxStoredInfoHashes: Int
    public var maxPeersPerInfoHash: Int
    /// Peers in one `get_peers` answer: 50 keeps an IPv4 answer under 1,024 bytes (BEP 32).
    public var maxValuesPerResponse: Int
    /// Queries answered per source address: `queriesPerSecondPerSource` sustained, `queryBurstPerSource`
    /// at once; at most `maxTrackedSources` addresses are tracked.
    public var queriesPerSecondPerSource: Int
    public var queryBurstPerSource: Int
    public var maxTrackedSources: Int
    /// Datagrams sent per second in all, and the burst allowed after idling.
    public var sendRatePerSecond: Int
    public var sendBurst: Int
    /// Queries of ours awaiting an answer, at most (transaction ids are 2 bytes, so at most 32,768).
    public var maxPendingQueries: Int
    /// Lookups running at once, at most.
    public var maxConcurrentLookups: Int
    /// A bucket unchanged for this long is refreshed with a lookup: 15 minutes.
    public var bucketRefreshNanoseconds: UInt64
    /// How often ``DHTNode/startAnnouncing(_:port:now:into:)`` announces again: 30 minutes.
    public var reannounceNanoseconds: UInt64
    /// While the table has fewer than K nodes, how often to bootstrap again: 15 s.
    public var rebootstrapNanoseconds: UInt64
    /// A lookup still running after this long is ended with what it has: 60 s.
    public var lookupTimeoutNanoseconds: UInt64
    /// BEP 42 enforcement: lookups neither end on nor announce to nodes whose id does not match their IP.
    /// Off by default, as BEP 42 asks during its transition.
    public var enforceNodeIDVerification: Bool

    public init(family: DHTAddressFamily = .ipv4) {
        self.family = family
        routing = RoutingTableOptions()
        limits = KRPCLimits()
        alpha = 4
        softTimeoutNanoseconds = 1_000_000_000
        hardTimeoutNanoseconds = 5_000_000_000
        tokenRotationNanoseconds = 5 * 60 * 1_000_000_000
        peerLifetimeNanoseconds = 30 * 60 * 1_000_000_000
        maxStoredInfoHashes = 5000
        maxPeersPerInfoHash = 200
        maxValuesPerResponse = family == .ipv4 ? 50 : 25
        queriesPerSecondPerSource = 10
        queryBurstPerSource = 20
        maxTrackedSources = 10_000
        sendRatePerSecond = 500
        sendBurst = 100
        maxPendingQueries = 2048
        maxConcurrentLookups = 64
        bucketRefreshNanoseconds = 15 * 60 * 1_000_000_000
        reannounceNanoseconds = 30 * 60 * 1_000_000_000
        rebootstrapNanoseconds = 15 * 1_000_000_000
        lookupTimeoutNanoseconds = 60_000_000_000
        enforceNodeIDVerification = false
    }
}
