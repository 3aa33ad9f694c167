import TorrentModel

/// Counters for diagnostics and tests.
public struct DHTStatistics: Hashable, Sendable {
    public var datagramsReceived = 0
    /// Datagrams that did not decode, or came from the wrong family or port 0.
    public var malformedDatagrams = 0
    public var queriesAnswered = 0
    /// Queries dropped by the per-source limit.
    public var queriesRateLimited = 0
    /// Answers with no matching query in flight to that endpoint.
    public var unexpectedAnswers = 0
    public var queriesSent = 0
    public var queriesTimedOut = 0
    /// Datagrams not sent for the global send limit or the cap on queries in flight.
    public var sendsRefused = 0
}

/// One mainline DHT node (BEP 5, with BEP 32's node lists and BEP 42's node ids) as a pure state
/// machine: datagrams, caller requests and the current time go in; datagrams to send and ``DHTEvent``s
/// come out in a ``DHTOutput``. No sockets, clocks or threads, so simulations run it on virtual time.
///
/// The engine owns one per address family, on the UDP socket all torrents share: it passes every
/// datagram from that socket to ``received(_:from:now:into:)``, calls ``tick(now:into:)`` a few times a
/// second (timeouts resolve to tick granularity), and sends what comes out.
///
/// Invariants: every query in `pending` was sent to its endpoint less than the hard timeout ago (as of
/// the last tick) and has a unique 2-byte transaction id; only an answer from that endpoint with that id
/// resolves it; each lookup sends at most two queries per endpoint (one retry); at most `maxConcurrentLookups` run;
/// `probing` holds exactly the endpoints of the probes in `pending`.
public struct DHTNode: Sendable {
    /// Why a query of ours is in flight.
    enum QueryPurpose: Hashable, Sendable {
        case lookup(LookupID)
        /// Pinging a questionable table node before letting a replacement in.
        case check
        /// Pinging a node that queried us, to add it to the table if it answers.
        case probe
        case announce
    }

    struct PendingQuery: Sendable {
        var endpoint: DHTEndpoint
        /// The id we expect to answer; nil for bootstrap endpoints.
        var expectedID: NodeID?
        var sentAt: Instant
        var purpose: QueryPurpose
    }

    /// An infohash announced every `reannounceNanoseconds` until stopped.
    struct RecurringAnnouncement: Sendable {
        var infoHash: InfoHash
        var announcement: Lookup.Announcement
        var nextAt: Instant
    }

    /// Our node id. Once answering nodes agree on our external address and this id does not satisfy
    /// BEP 42 for it, it is replaced by one from ``NodeIDSecurity/nodeID(for:using:)``.
    public private(set) var id: NodeID
    /// Our external address as answering nodes' votes decided it (BEP 42), once they have.
    public private(set) var externalAddress: DHTIPAddress?
    public let configuration: DHTConfiguration
    public internal(set) var statistics = DHTStatistics()
    var random: SeededRandom
    var table: RoutingTable
    var addressVotes = ExternalAddressVotes()
    var tokens: WriteTokens
    var store: PeerStore
    var sourceLimiter: SourceRateLimiter
    var sendBudget: DatagramBucket
    var pending: [UInt16: PendingQuery] = [:]
    /// The endpoints of the probes in `pending`.
    var probing: Set<DHTEndpoint> = []
    var lookups: [Lookup] = []
    var nextLookupNumber: UInt32 = 1
    var bootstrapEndpoints: [DHTEndpoint] = []
    var savedNodes: [DHTNodeInfo] = []
    var recurringAnnouncements: [RecurringAnnouncement] = []
    var lastBootstrapAt: Instant?
    var lastSweepAt: Instant
    /// Set by a dual-stack caller while the other family's table is thin (BEP 32's bootstrap): our
    /// lookups then ask for both families' nodes and hand the other family's on in
    /// ``DHTEvent/otherFamilyNodes(_:)``.
    public var wantsOtherFamilyNodes = false {
        // The lookups already under way asked for our family only: the next tick looks up our own id
        // once more, whatever our own table holds.
        didSet { if wantsOtherFamilyNodes && !oldValue { otherFamilyLookupDue = true } }
    }
    var otherFamilyLookupDue = false

    /// How often stored peers and idle rate-limit entries are swept: 10 s.
    static let sweepIntervalNanoseconds: UInt64 = 10_000_000_000
    /// Bootstrap endpoints and saved nodes kept, at most.
    static let maxBootstrapNodes = 256

    /// - Parameters:
    ///   - random: the source of transaction ids, token secrets and refresh targets. Seed it from a
    ///     secure source in production: predictable tokens let others announce on behalf of any IP.
    public init(
        id: NodeID, configuration: DHTConfiguration = DHTConfiguration(), random: SeededRandom, now: Instant
    ) {
        var configuration = configuration
        configuration.maxPendingQueries = min(max(1, configuration.maxPendingQueries), 32_768)
        self.id = id
        self.configuration = configuration
        self.random = random
        table = RoutingTable(ownID: id, options: configuration.routing, now: now)
        tokens = WriteTokens(
            rotationNanoseconds: configuration.tokenRotationNanoseconds, random: &self.random, now: now)
        store = PeerStore(
            maxInfoHashes: configuration.maxStoredInfoHashes,
            maxPeersPerInfoHash: configuration.maxPeersPerInfoHash,
            lifetimeNanoseconds: configuration.peerLifetimeNanoseconds)
        sourceLimiter = SourceRateLimiter(
            queriesPerSecond: configuration.queriesPerSecondPerSource,
            burst: configuration.queryBurstPerSource,
            maxSources: configuration.maxTrackedSources)
        sendBudget = DatagramBucket(
            ratePerSecond: configuration.sendRatePerSecond, burst: configuration.sendBurst, now: now)
        lastSweepAt = now
    }

    // MARK: - State

    /// Nodes in the routing table.
    public var routingTableNodeCount: Int { table.nodeCount }
    /// The table's nodes not known bad.
    public func liveRoutingTableNodeCount(now: Instant) -> Int { table.liveNodeCount(now: now) }
    /// Buckets in the routing table (1 + the number of splits).
    public var routingTableBucketCount: Int { table.buckets.count }
    /// Infohashes other nodes announced to us that are still stored.
    public var storedInfoHashCount: Int { store.infoHashCount }
    /// Lookups running, including the table's own maintenance lookups.
    public var activeLookupCount: Int { lookups.count }
    /// Queries of ours awaiting an answer.
    public var pendingQueryCount: Int { pending.count }

    /// The routing table's K closest live nodes to `target`, closest first.
    public func closestNodes(to target: NodeID, now: Instant) -> [DHTNodeInfo] {
        table.closest(to: DHTKey(target), count: configuration.routing.bucketSize, now: now)
    }

    // MARK: - Caller requests

    /// Adds resolved bootstrap routers (their ids are unknown). Used while the table has fewer than K
    /// nodes; endpoints of the other family are ignored.
    public mutating func addBootstrapEndpoints(_ endpoints: [DHTEndpoint]) {
        for endpoint in endpoints where endpoint.family == configuration.family && endpoint.port != 0 {
            if !bootstrapEndpoints.contains(endpoint) && bootstrapEndpoints.count < Self.maxBootstrapNodes {
                bootstrapEndpoints.append(endpoint)
            }
        }
    }

    /// Adds nodes saved by an earlier run (see ``DHTSavedState``). They are asked during bootstrap and
    /// join the table only when they answer.
    public mutating func addSavedNodes(_ nodes: [DHTNodeInfo]) {
        for node in nodes where node.endpoint.family == configuration.family && node.id != id {
            if !savedNodes.contains(node) && savedNodes.count < Self.maxBootstrapNodes {
                savedNodes.append(node)
            }
        }
    }

    /// Nodes of our family that the other family's DHT heard of (BEP 32's "leaking" between the two): kept
    /// as bootstrap nodes, and while the table is thin the next ``tick(now:into:)`` bootstraps through
    /// them rather than waiting for `rebootstrapNanoseconds`.
    public mutating func learnNodes(_ nodes: [DHTNodeInfo]) {
        let before = savedNodes.count
        addSavedNodes(nodes)
        if savedNodes.count > before && table.nodeCount < configuration.routing.bucketSize {
            lastBootstrapAt = nil
        }
    }

    /// Looks up our own id to fill the table (BEP 5's start-up). Also done by ``tick(now:into:)`` while
    /// the table has fewer than K nodes. Nil when `maxConcurrentLookups` are already running.
    @discardableResult
    public mutating func bootstrap(now: Instant, into output: inout DHTOutput) -> LookupID? {
        lastBootstrapAt = now
        return startLookup(target: id, purpose: .findNode, reportsToCaller: true, now: now, into: &output)
    }

    /// Looks up the nodes closest to `target`.
    @discardableResult
    public mutating func findNode(_ target: NodeID, now: Instant, into output: inout DHTOutput) -> LookupID? {
        startLookup(target: target, purpose: .findNode, reportsToCaller: true, now: now, into: &output)
    }

    /// Looks up peers for `infoHash`; they arrive as ``DHTEvent/peersFound(_:infoHash:peers:)``.
    @discardableResult
    public mutating func findPeers(
        for infoHash: InfoHash, now: Instant, into output: inout DHTOutput
    ) -> LookupID? {
        startLookup(
            target: NodeID(reinterpreting: infoHash), purpose: .getPeers(announce: nil),
            reportsToCaller: true,
            now: now, into: &output)
    }

    /// Looks up peers for `infoHash`, then announces us on `port` to the K closest nodes that answered.
    /// With `impliedPort`, they store the port our datagrams come from instead (for NATed uTP peers).
    @discardableResult
    public mutating func announce(
        _ infoHash: InfoHash, port: UInt16, impliedPort: Bool = false, now: Instant,
        into output: inout DHTOutput
    ) -> LookupID? {
        startLookup(
            target: NodeID(reinterpreting: infoHash),
            purpose: .getPeers(announce: Lookup.Announcement(port: port, impliedPort: impliedPort)),
            reportsToCaller: true, now: now, into: &output)
    }

    /// Announces `infoHash` now and again every `reannounceNanoseconds` from ``tick(now:into:)``, until
    /// ``stopAnnouncing(_:)``. Each round is a lookup with its own id and events.
    @discardableResult
    public mutating func startAnnouncing(
        _ infoHash: InfoHash, port: UInt16, impliedPort: Bool = false, now: Instant,
        into output: inout DHTOutput
    ) -> LookupID? {
        stopAnnouncing(infoHash)
        let announcement = Lookup.Announcement(port: port, impliedPort: impliedPort)
        recurringAnnouncements.append(
            RecurringAnnouncement(
                infoHash: infoHash, announcement: announcement,
                nextAt: now.advanced(byNanoseconds: configuration.reannounceNanoseconds)))
        return announce(infoHash, port: port, impliedPort: impliedPort, now: now, into: &output)
    }

    /// Stops re-announcing `infoHash` (a lookup already running finishes).
    public mutating func stopAnnouncing(_ infoHash: InfoHash) {
        recurringAnnouncements.removeAll { $0.infoHash == infoHash }
    }

    /// The table's nodes and our id, for ``DHTSavedState/encoded()``.
    public func savedState(now: Instant) -> DHTSavedState {
        DHTSavedState(id: id, nodes: table.allNodes(now: now))
    }

    // MARK: - Input

    /// One datagram from the DHT socket. Never traps, whatever the bytes. `alongside` is the other
    /// family's node when the caller runs both (BEP 32): a `find_node` or `get_peers` whose `want` names
    /// its family is answered with its table's nodes too.
    public mutating func received(
        _ datagram: [UInt8], from source: DHTEndpoint, now: Instant, into output: inout DHTOutput,
        alongside: DHTNode? = nil
    ) {
        statistics.datagramsReceived += 1
        guard source.family == configuration.family, source.port != 0 else {
            statistics.malformedDatagrams += 1
            return
        }
        let message: KRPCMessage
        do {
            message = try KRPCMessage.decode(datagram, limits: configuration.limits)
        } catch {
            statistics.malformedDatagrams += 1
            if let transactionID = error.queryTransactionID, sourceLimiter.allows(source.address, now: now) {
                let code =
                    error.reason == .unknownMethod ? KRPCErrorCode.methodUnknown : KRPCErrorCode.protocolError
                answer(
                    KRPCMessage(
                        transactionID: transactionID,
                        body: .error(code: code, message: Array("\(error.reason)".utf8.prefix(64)))),
                    to: source, now: now, into: &output)
            }
            return
        }
        switch message.body {
        case .query(let query):
            handleQuery(query, in: message, from: source, alongside: alongside, now: now, into: &output)
        case .response, .error:
            handleAnswer(message, from: source, now: now, into: &output)
        }
    }

    /// Timeouts, lookup progress, table upkeep, token rotation and re-announces. Call a few times a
    /// second; nothing here depends on being called at exact instants.
    public mutating func tick(now: Instant, into output: inout DHTOutput) {
        expirePendingQueries(now: now, into: &output)
        var index = 0
        while index < lookups.count {
            let overdue =
                now.nanoseconds(since: lookups[index].startedAt) >= configuration.lookupTimeoutNanoseconds
            if overdue || advanceLookup(at: index, now: now, into: &output) {
                finishLookup(at: index, now: now, into: &output)
            } else {
                index += 1
            }
        }
        for node in table.nodesToCheck(now: now, checkWindow: configuration.hardTimeoutNanoseconds * 2) {
            sendQuery(
                .ping(sender: id), to: node.endpoint, expectedID: node.id, purpose: .check, now: now,
                into: &output)
        }
        tokens.tick(now: now, random: &random)
        maintainTable(now: now, into: &output)
        for position in recurringAnnouncements.indices where recurringAnnouncements[position].nextAt <= now {
            let due = recurringAnnouncements[position]
            // With every lookup slot taken it stays due, and is tried again at the next tick.
            guard
                startLookup(
                    target: NodeID(reinterpreting: due.infoHash),
                    purpose: .getPeers(announce: due.announcement),
                    reportsToCaller: true, now: now, into: &output) != nil
            else { continue }
            recurringAnnouncements[position].nextAt = now.advanced(
                byNanoseconds: configuration.reannounceNanoseconds)
        }
        if now.nanoseconds(since: lastSweepAt) >= Self.sweepIntervalNanoseconds {
            lastSweepAt = now
            store.expire(now: now)
            sourceLimiter.forgetIdle(now: now)
        }
    }

    /// Re-bootstraps a table with fewer than K nodes and refreshes buckets that have been quiet for 15 minutes.
    private mutating func maintainTable(now: Instant, into output: inout DHTOutput) {
        let canBootstrap = !bootstrapEndpoints.isEmpty || !savedNodes.isEmpty
        let bootstrapDue =
            lastBootstrapAt.map { now.nanoseconds(since: $0) >= configuration.rebootstrapNanoseconds } ?? true
        if otherFamilyLookupDue && (canBootstrap || table.nodeCount > 0) {
            otherFamilyLookupDue = false
            lastBootstrapAt = now
            startLookup(target: id, purpose: .findNode, reportsToCaller: false, now: now, into: &output)
        } else if table.liveNodeCount(now: now) < configuration.routing.bucketSize && canBootstrap
            && bootstrapDue
        {
            lastBootstrapAt = now
            startLookup(target: id, purpose: .findNode, reportsToCaller: false, now: now, into: &output)
        }
        guard table.nodeCount > 0 else { return }
        for key in table.bucketsToRefresh(
            now: now, interval: configuration.bucketRefreshNanoseconds, random: &random)
        {
            startLookup(
                target: key.nodeID, purpose: .findNode, reportsToCaller: false, now: now, into: &output)
        }
    }

    /// Counts an answering node's view of our address; when the votes settle on an address our id does
    /// not satisfy BEP 42 for, takes a BEP 42 id for it, re-buckets the table under it and looks it up.
    mutating func learnExternalAddress(
        _ reported: DHTIPAddress, from voter: DHTIPAddress, now: Instant, into output: inout DHTOutput
    ) {
        addressVotes.record(reported, from: voter)
        guard let decided = addressVotes.decided, decided != externalAddress else { return }
        externalAddress = decided
        guard !NodeIDSecurity.isValid(id, for: decided) else { return }
        let oldID = id
        id = NodeIDSecurity.nodeID(for: decided, using: &random)
        table = table.rebucketed(ownID: id, now: now)
        output.events.append(.nodeIDChanged(from: oldID, to: id, externalAddress: decided))
        // Our new neighbourhood has not heard of us, nor we of it.
        startLookup(target: id, purpose: .findNode, reportsToCaller: false, now: now, into: &output)
    }

    // MARK: - Sending

    /// Sends a query, remembering it under a fresh transaction id; false when the send limit or the cap
    /// on queries in flight refused it.
    @discardableResult
    mutating func sendQuery(
        _ query: KRPCQuery, to endpoint: DHTEndpoint, expectedID: NodeID?, purpose: QueryPurpose,
        now: Instant,
        into output: inout DHTOutput
    ) -> Bool {
        guard pending.count < configuration.maxPendingQueries, sendBudget.take(now: now) else {
            statistics.sendsRefused += 1
            return false
        }
        var transactionID: UInt16
        repeat {
            transactionID = UInt16(truncatingIfNeeded: random.next())
        } while pending[transactionID] != nil
        pending[transactionID] = PendingQuery(
            endpoint: endpoint, expectedID: expectedID, sentAt: now, purpose: purpose)
        let message = KRPCMessage(
            transactionID: [UInt8(transactionID >> 8), UInt8(transactionID & 0xff)], body: .query(query))
        output.datagrams.append(DHTDatagram(bytes: message.encoded(), destination: endpoint))
        statistics.queriesSent += 1
        return true
    }

    /// Sends an answer if the global send limit allows (answers are dropped, never queued).
    mutating func answer(
        _ message: KRPCMessage, to endpoint: DHTEndpoint, now: Instant, into output: inout DHTOutput
    ) {
        guard sendBudget.take(now: now) else {
            statistics.sendsRefused += 1
            return
        }
        output.datagrams.append(DHTDatagram(bytes: message.encoded(), destination: endpoint))
    }
}
