import TorrentModel

extension DHTNode {
    /// Starts a lookup seeded from the table (and, while the table is thin, from the bootstrap endpoints
    /// and saved nodes) and sends its first queries.
    @discardableResult
    mutating func startLookup(
        target: NodeID, purpose: Lookup.Purpose, reportsToCaller: Bool, now: Instant,
        into output: inout DHTOutput
    ) -> LookupID? {
        guard lookups.count < configuration.maxConcurrentLookups else { return nil }
        let lookupID = LookupID(value: nextLookupNumber)
        nextLookupNumber &+= 1
        let bucketSize = configuration.routing.bucketSize
        var lookup = Lookup(
            id: lookupID, startedAt: now, target: target, purpose: purpose, reportsToCaller: reportsToCaller,
            bucketSize: bucketSize, requiresVerifiedIDs: configuration.enforceNodeIDVerification)
        lookup.add(table.closest(to: DHTKey(target), count: bucketSize * 2, now: now), ownID: id)
        if table.liveNodeCount(now: now) < bucketSize {
            lookup.add(savedNodes, ownID: id)
            lookup.add(endpoints: bootstrapEndpoints)
        }
        lookups.append(lookup)
        if advanceLookup(at: lookups.count - 1, now: now, into: &output) {
            finishLookup(at: lookups.count - 1, now: now, into: &output)
        }
        return lookupID
    }

    /// Applies the soft timeout and sends the queries the lookup may have in flight; true when it has
    /// finished.
    mutating func advanceLookup(at index: Int, now: Instant, into output: inout DHTOutput) -> Bool {
        lookups[index].applySoftTimeout(now: now, softTimeout: configuration.softTimeoutNanoseconds)
        let lookup = lookups[index]
        // BEP 32: a plain query unless the other family's table needs nodes.
        let want: KRPCWant = wantsOtherFamilyNodes ? [.ipv4, .ipv6] : []
        for candidateIndex in lookups[index].nextQueries(alpha: configuration.alpha, now: now) {
            let candidate = lookups[index].candidates[candidateIndex]
            let query: KRPCQuery =
                switch lookup.purpose {
                case .findNode: .findNode(sender: id, target: lookup.target, want: want)
                case .getPeers:
                    .getPeers(sender: id, infoHash: InfoHash(reinterpreting: lookup.target), want: want)
                }
            let sent = sendQuery(
                query, to: candidate.endpoint, expectedID: candidate.id, purpose: .lookup(lookup.id),
                now: now,
                into: &output)
            if !sent { lookups[index].deferQuery(at: candidateIndex) }
        }
        return lookups[index].isFinished
    }

    /// Ends a lookup: announces to the closest nodes that gave tokens, if asked, and reports the result.
    mutating func finishLookup(at index: Int, now: Instant, into output: inout DHTOutput) {
        let lookup = lookups.remove(at: index)
        if lookup.target == id, lookup.purpose == .findNode {
            // Kademlia's join: after finding our neighbours, fill the buckets farther away.
            for key in table.sparseFarBucketsToRefresh(now: now, random: &random) {
                startLookup(
                    target: key.nodeID, purpose: .findNode, reportsToCaller: false, now: now, into: &output)
            }
        }
        let responders = lookup.closestResponders
        var announcedTo = 0
        if case .getPeers(let announcement?) = lookup.purpose {
            for responder in responders {
                guard let token = responder.token else { continue }
                let query = KRPCQuery.announcePeer(
                    sender: id, infoHash: InfoHash(reinterpreting: lookup.target), port: announcement.port,
                    impliedPort: announcement.impliedPort, token: token)
                if sendQuery(
                    query, to: responder.endpoint, expectedID: responder.id, purpose: .announce, now: now,
                    into: &output)
                {
                    announcedTo += 1
                }
            }
        }
        guard lookup.reportsToCaller else { return }
        let closest = responders.compactMap { candidate in
            candidate.id.map { DHTNodeInfo(id: $0, endpoint: candidate.endpoint) }
        }
        output.events.append(
            .lookupFinished(
                lookup.id,
                LookupResult(
                    target: lookup.target, closestNodes: closest, peerCount: lookup.peers.count,
                    announcedTo: announcedTo, rounds: responders.map(\.round).max() ?? 0)))
    }

    /// A response or error: resolves the matching query in flight, if the transaction id and the
    /// endpoint both match.
    mutating func handleAnswer(
        _ message: KRPCMessage, from source: DHTEndpoint, now: Instant, into output: inout DHTOutput
    ) {
        guard message.transactionID.count == 2 else {
            statistics.unexpectedAnswers += 1
            return
        }
        let transactionID = UInt16(message.transactionID[0]) << 8 | UInt16(message.transactionID[1])
        guard let query = pending[transactionID], query.endpoint == source else {
            statistics.unexpectedAnswers += 1
            return
        }
        pending[transactionID] = nil
        if query.purpose == .probe { probing.remove(source) }
        if let reported = message.requesterEndpoint {
            learnExternalAddress(reported.address, from: source.address, now: now, into: &output)
        }
        guard case .response(let response) = message.body else {
            // An error answer: alive, but no use to a lookup.
            lookupQueryFailed(query, now: now, into: &output)
            return
        }
        let isVerified = NodeIDSecurity.isValid(response.sender, for: source.address)
        if !message.isReadOnly {
            if let expectedID = query.expectedID, expectedID != response.sender,
                table.entry(for: expectedID)?.info.endpoint == source
            {
                // Another node at that address: the one we knew there is gone (or took a new id, as BEP 42
                // asks), so the old entry fails, and once it is bad the answering id may take its place.
                // Only when the table has that id there: a third party naming the endpoint under a made-up
                // id must not charge the live node a failure.
                table.queryFailed(source, now: now)
            }
            _ = table.nodeResponded(
                DHTNodeInfo(id: response.sender, endpoint: source), isVerified: isVerified, now: now)
        }
        if wantsOtherFamilyNodes {
            let other = configuration.family == .ipv4 ? response.nodes6 : response.nodes
            if !other.isEmpty { output.events.append(.otherFamilyNodes(other)) }
        }
        guard case .lookup(let lookupID) = query.purpose,
            let index = lookups.firstIndex(where: { $0.id == lookupID }),
            let candidate = lookups[index].pendingIndex(of: source)
        else { return }
        let peers = lookups[index].responded(
            at: candidate, response: response, isVerified: isVerified, family: configuration.family, ownID: id
        )
        if !peers.isEmpty, lookups[index].reportsToCaller, let infoHash = lookups[index].infoHash {
            output.events.append(.peersFound(lookupID, infoHash: infoHash, peers: peers))
        }
        if advanceLookup(at: index, now: now, into: &output) {
            finishLookup(at: index, now: now, into: &output)
        }
    }

    /// Queries past the hard timeout have failed: the table counts the failure and lookups move on.
    mutating func expirePendingQueries(now: Instant, into output: inout DHTOutput) {
        let expired = pending.filter {
            now.nanoseconds(since: $0.value.sentAt) >= configuration.hardTimeoutNanoseconds
        }
        // In transaction-id order, so that a run replays identically from its seed.
        for (transactionID, query) in expired.sorted(by: { $0.key < $1.key }) {
            pending[transactionID] = nil
            if query.purpose == .probe { probing.remove(query.endpoint) }
            statistics.queriesTimedOut += 1
            table.queryFailed(query.endpoint, now: now)
            // A saved or leaked node that does not answer is not asked at every bootstrap again.
            savedNodes.removeAll { $0.endpoint == query.endpoint }
            lookupQueryFailed(query, now: now, into: &output)
        }
    }

    private mutating func lookupQueryFailed(_ query: PendingQuery, now: Instant, into output: inout DHTOutput)
    {
        guard case .lookup(let lookupID) = query.purpose,
            let index = lookups.firstIndex(where: { $0.id == lookupID }),
            let candidate = lookups[index].pendingIndex(of: query.endpoint)
        else { return }
        lookups[index].failed(at: candidate)
        if advanceLookup(at: index, now: now, into: &output) {
            finishLookup(at: index, now: now, into: &output)
        }
    }
}
