import TorrentModel

extension DHTNode {
    /// Answers a query (BEP 5), within the per-source rate limit. Every answer carries BEP 42's `ip`.
    mutating func handleQuery(
        _ query: KRPCQuery, in message: KRPCMessage, from source: DHTEndpoint, alongside: DHTNode?,
        now: Instant, into output: inout DHTOutput
    ) {
        guard sourceLimiter.allows(source.address, now: now) else {
            statistics.queriesRateLimited += 1
            return
        }
        // BEP 43: read-only nodes are served but kept out of the table.
        if !message.isReadOnly && query.sender != id {
            noteQuerier(DHTNodeInfo(id: query.sender, endpoint: source), now: now, into: &output)
        }
        let body: KRPCMessage.Body
        switch query {
        case .ping:
            body = .response(KRPCResponse(sender: id))
        case .findNode(_, let target, let want):
            body = .response(
                withNodes(
                    KRPCResponse(sender: id), closestTo: DHTKey(target), want: want, alongside: alongside,
                    now: now))
        case .getPeers(_, let infoHash, let want):
            var response = KRPCResponse(sender: id, token: tokens.token(for: source.address))
            response.values = store.peers(
                for: infoHash, family: configuration.family, limit: configuration.maxValuesPerResponse,
                random: &random)
            // BEP 32: nodes come with values too, so the asker keeps converging.
            body = .response(
                withNodes(
                    response, closestTo: DHTKey(infoHash), want: want, alongside: alongside, now: now))
        case .announcePeer(_, let infoHash, let port, let impliedPort, let token):
            guard tokens.isValid(token, for: source.address) else {
                body = .error(code: KRPCErrorCode.protocolError, message: Array("bad token".utf8))
                break
            }
            let peer = DHTEndpoint(address: source.address, port: impliedPort ? source.port : port)
            guard store.store(peer, for: infoHash, now: now) else {
                body = .error(code: KRPCErrorCode.server, message: Array("storage full".utf8))
                break
            }
            body = .response(KRPCResponse(sender: id))
        }
        statistics.queriesAnswered += 1
        answer(
            KRPCMessage(transactionID: message.transactionID, body: body, requesterEndpoint: source),
            to: source,
            now: now, into: &output)
    }

    /// Fills the node lists the asker wants (BEP 32): with no `want`, our family's; each family `want`
    /// names from that family's table, the other's only when a node of it runs `alongside` us.
    private func withNodes(
        _ response: KRPCResponse, closestTo key: DHTKey, want: KRPCWant, alongside: DHTNode?, now: Instant
    ) -> KRPCResponse {
        var response = response
        for node in [self, alongside].compactMap({ $0 }) {
            let family: KRPCWant = node.configuration.family == .ipv4 ? .ipv4 : .ipv6
            let wanted =
                want.isEmpty ? node.configuration.family == configuration.family : want.contains(family)
            guard wanted else { continue }
            let nodes = node.table.closest(to: key, count: node.configuration.routing.bucketSize, now: now)
            if family == .ipv4 { response.nodes = nodes } else { response.nodes6 = nodes }
        }
        return response
    }

    /// A querier counts as active if the table has it; if not, and it would fit, it is pinged, and joins
    /// the table when it answers (only nodes that answer us are added). An endpoint is pinged once at a
    /// time, and at most `maxProbesInFlight` at once: a flood of queries from new sources must not
    /// turn into as many pings, taking the queries in flight our lookups need.
    /// A node of the table that went bad (it failed two queries: lost connectivity, say) is alive if it
    /// queries us: it is pinged too, and its answer makes it good again; otherwise a table of bad nodes
    /// would never recover.
    private mutating func noteQuerier(_ node: DHTNodeInfo, now: Instant, into output: inout DHTOutput) {
        let known = table.entry(for: node.id) != nil
        if known { table.nodeQueried(node, now: now) }
        if (!known || table.status(of: node.id, now: now) == .bad) && probing.count < Self.maxProbesInFlight,
            !probing.contains(node.endpoint),
            known || table.hasRoom(for: node.id, now: now),
            sendQuery(
                .ping(sender: id), to: node.endpoint, expectedID: node.id, purpose: .probe, now: now,
                into: &output)
        {
            probing.insert(node.endpoint)
        }
    }

    static let maxProbesInFlight = 256
}
