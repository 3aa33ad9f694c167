import Glibc
import Metainfo
import Swarm
import TLS
import TorrentModel
import Tracker
import URing
import WebSeed

// Web seeds (BEP 19): HTTP(S) servers holding the torrent's files, each a permanently unchoking seed in
// the request pipeline, which gives it blocks in runs from the largest gaps
// (`RequestPipeline.peerServesRanges`). Its blocks become ranged GETs (joined when adjacent, one per
// file), pipelined on a keep-alive connection (TLS through memory buffers for `https`, its bytes on the
// ring like plain ones); the bytes go through the same piece buffers and hash checks as peers'.
// A seed that breaks the protocol, ignores ranges or sends a piece that fails its hash is dropped; one
// that is busy or loses its connection rests (`WebSeedBackoff`) and is asked again.
extension DownloadSession {
    // MARK: Starting and stopping

    /// The web seeds to use: the torrent's (unless turned off) and the extra ones, once each.
    var webSeedURLs: [String] {
        var urls: [String] = []
        for url in (options.useTorrentWebSeeds ? metainfo.webSeeds : []) + options.extraWebSeeds
        where !urls.contains(url) {
            urls.append(url)
        }
        return urls
    }

    /// Gives each usable web seed a pipeline slot that has every piece, and connects to it.
    func startWebSeeds(now: UInt64) {
        let urls = webSeedURLs
        guard !urls.isEmpty, webSeedPool == nil, !verified.isComplete else { return }
        let pool = WebSeedPool(
            tenant: tenant, resolver: HostResolver(waker: ring.waker),
            tlsContexts: TLSContextLoader(extraCAFile: options.webSeedCAFile, waker: ring.waker))
        webSeedPool = pool
        for (position, text) in urls.enumerated() {
            guard position < WebSeedPool.maxSeeds else {
                log("web seeds: only the first \(WebSeedPool.maxSeeds) of \(urls.count) are used")
                break
            }
            let url: TrackerURL
            switch WebSeedURL.parse(text) {
            case .success(let parsed): url = parsed
            case .failure(let problem):
                log("web seed \(text): not used: \(problem)")
                continue
            }
            // A slot in the peers' numbering that no peer link takes while the seed is in use.
            let index = links.count
            links.append(nil)
            linkGenerations.append(0)
            let seed = WebSeedLink(slot: PeerSlot(UInt32(index)), name: text, baseURL: url)
            pool.seeds.append(seed)
            pipeline.peerConnected(seed.slot)
            pipeline.peerServesRanges(seed.slot)
            pipeline.peerAdvertisedRequestQueue(seed.slot, length: WebSeedPool.requestQueueBlocks)
            var none: [RequestAction] = []
            pipeline.peerHaveAll(seed.slot, into: &none)
            log("web seed \(text): using it")
            openWebSeedConnection(seed, to: url, now: now)
        }
    }

    /// Whether pipeline slot `index` belongs to a web seed in use (peer links leave it alone).
    func isWebSeedSlot(_ index: Int) -> Bool {
        webSeedPool?.seed(at: PeerSlot(UInt32(index))) != nil
    }

    func webSeed(at slot: PeerSlot) -> WebSeedLink? {
        guard let webSeedPool, links[Int(slot.value)] == nil else { return nil }
        return webSeedPool.seed(at: slot)
    }

    /// Whether web seeds still have something to do: the torrent must not rest meanwhile.
    var hasWebSeedWork: Bool {
        guard let webSeedPool else { return false }
        return webSeedPool.hasOperationsInFlight
            || (!verified.isComplete && webSeedPool.seeds.contains { !$0.dropped })
    }

    /// The torrent is leaving: every web seed connection ends.
    func closeWebSeeds() {
        for seed in webSeedPool?.seeds ?? [] {
            if !seed.dropped { logTotals(seed) }
            seed.connection?.close()
            seed.connection = nil
            seed.retryAt = nil
            seed.dropped = true
        }
    }

    /// Once a second or so: seeds whose rest is over are asked again, stalled ones rest.
    func tickWebSeeds(now: UInt64) {
        guard let webSeedPool else { return }
        for seed in webSeedPool.seeds where !seed.dropped {
            if verified.isComplete {
                // Nothing more to fetch: keep-alive connections are not kept.
                seed.connection?.close()
                seed.connection = nil
                continue
            }
            // A stall is measured from `lastProgress`, which may be later than this tick's `now`: the
            // tick's own sends read the clock afresh.
            if let retryAt = seed.retryAt, now >= retryAt {
                seed.retryAt = nil
                seed.waitingForTLSContext = false
                openWebSeedConnection(seed, to: seed.queued.first?.url ?? seed.baseURL, now: now)
            } else if !seed.sent.isEmpty && now >= seed.lastProgress
                && now - seed.lastProgress >= WebSeedPool.stallNanoseconds
            {
                backOff(
                    seed, reason: "no data for \(WebSeedPool.stallNanoseconds / 1_000_000_000) s", now: now)
            }
        }
    }

    // MARK: Blocks into ranges

    /// Turns the blocks the pipeline gave each seed into ranges and sends what its connection can take.
    func sendWebSeedRequests() {
        guard let webSeedPool else { return }
        let now = nowNanoseconds
        for seed in webSeedPool.seeds
        where seed.waitingForTLSContext && !seed.dropped && webSeedPool.tlsContexts.isLoaded {
            seed.waitingForTLSContext = false
            seed.retryAt = nil
            openWebSeedConnection(seed, to: seed.queued.first?.url ?? seed.baseURL, now: now)
        }
        for seed in webSeedPool.seeds where !seed.dropped && seed.retryAt == nil {
            planFetches(seed, now: now)
            guard let next = seed.queued.first else { continue }
            guard let connection = seed.connection, !connection.closing else {
                openWebSeedConnection(seed, to: next.url, now: now)
                continue
            }
            guard connection.connected, !connection.sendInFlight else { continue }
            if next.url.connectionOrigin != connection.origin {
                // A redirect to another server: once this one has answered, connect there.
                if seed.sent.isEmpty {
                    connection.close()
                    seed.connection = nil
                    openWebSeedConnection(seed, to: next.url, now: now)
                }
                continue
            }
            var request: [UInt8] = []
            while seed.sent.count < WebSeedPool.maxFetchesInFlight, let fetch = seed.queued.first,
                fetch.url.connectionOrigin == connection.origin
            {
                seed.queued.removeFirst()
                if seed.sent.isEmpty { seed.lastProgress = now }
                seed.sent.append(fetch)
                request += RangeRequest.get(
                    fetch.url, range: fetch.plan.fileRange, userAgent: webSeedPool.userAgent)
            }
            guard !request.isEmpty else { continue }
            do throws(TLSError) {
                try connection.write(request)
            } catch {
                tlsFailed(seed, connection, error, now: now)
                continue
            }
            sendNextWebSeedBytes(seed, connection)
        }
    }

    /// New blocks become fetches at the end of the queue; padding is zeros, filled in at once.
    private func planFetches(_ seed: WebSeedLink, now: UInt64) {
        guard !seed.blocks.isEmpty else { return }
        let plans = FetchPlan.fetches(
            for: seed.blocks, layout: metainfo.layout, maxFetchBytes: WebSeedPool.maxFetchBytes)
        seed.blocks.removeAll()
        for plan in plans {
            if plan.isPadding {
                let zeros = [UInt8](repeating: 0, count: plan.fileRange.count)
                zeros.withUnsafeBytes { deliver($0, at: plan.payloadOffset, from: seed, now: now) }
                continue
            }
            seed.queued.append(WebSeedLink.Fetch(plan: plan, url: fileURL(plan.fileIndex, of: seed)))
        }
    }

    /// Where `seed` serves file `index` (BEP 19 rules, or where a redirect sent us).
    private func fileURL(_ index: Int, of seed: WebSeedLink) -> TrackerURL {
        if let known = seed.fileURLs[index] { return known }
        let files = metainfo.files
        let text = WebSeedURL.fileURL(
            base: seed.name, path: files[index].path,
            isSingleFile: files.count == 1 && files[index].path.count == 1)
        // The base parsed, and encoded components keep it parseable; the base alone is the fallback.
        let url = (try? TrackerURL(text)) ?? seed.baseURL
        seed.fileURLs[index] = url
        return url
    }

    // MARK: Connections

    private func openWebSeedConnection(_ seed: WebSeedLink, to url: TrackerURL, now: UInt64) {
        guard let webSeedPool, !seed.dropped, seed.connection == nil, !lifecycle.isEnding else { return }
        let address: SocketAddress
        switch url.host {
        case .ipv4(let ipv4): address = .ipv4(address: ipv4.value, port: url.port)
        case .ipv6(let ipv6): address = .ipv6(address: ipv6.bytes, port: url.port)
        case .name(let name):
            switch webSeedPool.resolver.lookup(name) {
            case .resolved(let resolved): address = resolved.with(port: url.port)
            case .pending:
                // Looked up off the reactor: asked again at the next tick.
                seed.retryAt = now + 200_000_000
                return
            case .failed(let reason):
                backOff(seed, reason: "cannot resolve '\(name)': \(reason)", now: now)
                return
            }
        }
        var tls: TLSConnection?
        if url.requiresTLS {
            do throws(TLSError) {
                tls = try webSeedPool.makeTLS(for: url)
            } catch {
                webSeedFailed(seed, .tls(origin: url.connectionOrigin, reason: error.description), now: now)
                return
            }
            guard tls != nil else {
                // The certificate store loads off the reactor: asked again once it has (or at the next
                // tick).
                seed.waitingForTLSContext = true
                seed.retryAt = now + 200_000_000
                return
            }
        }
        guard let fd = try? Socket.makeTCP(family: address.family) else {
            backOff(seed, reason: "socket: \(Errno(rawValue: errno))", now: now)
            return
        }
        let connection = WebSeedConnection(fd: fd, origin: url.connectionOrigin, tls: tls)
        seed.connection = connection
        guard let slot = webSeedPool.table.acquire(.init(seed: seed, connection: connection)) else {
            connection.close()
            seed.connection = nil
            backOff(seed, reason: "too many web seed operations", now: now)
            return
        }
        do {
            try ring.enqueue(.connect(fd: fd, address: address), for: slot, flags: .link)
            try ring.enqueue(.linkTimeout(.seconds(10)), for: slot)
            connection.connectInFlight = true
        } catch {
            webSeedPool.table.release(slot)
            failure = .io(error)
        }
    }

    /// Sends what the connection has queued, unless a send is in flight (its completion comes back here).
    private func sendNextWebSeedBytes(_ seed: WebSeedLink, _ connection: WebSeedConnection) {
        if connection.takeNextSend() { submitWebSeedSend(seed, connection) }
    }

    private func submitWebSeedSend(_ seed: WebSeedLink, _ connection: WebSeedConnection) {
        guard let webSeedPool, let slot = webSeedPool.table.acquire(.init(seed: seed, connection: connection))
        else { return }
        let bytes = connection.sending.withUnsafeBytes {
            UnsafeRawBufferPointer(rebasing: $0[connection.sendOffset...])
        }
        do {
            try ring.enqueue(.send(fd: connection.fd, bytes: bytes), for: slot)
            connection.sendInFlight = true
        } catch {
            webSeedPool.table.release(slot)
            failure = .io(error)
        }
    }

    private func armWebSeedReceive(_ seed: WebSeedLink, _ connection: WebSeedConnection) {
        guard let webSeedPool, !connection.receiveInFlight, !connection.closing,
            let slot = webSeedPool.table.acquire(.init(seed: seed, connection: connection))
        else { return }
        do {
            try ring.enqueue(.receive(fd: connection.fd, into: connection.buffer), for: slot)
            connection.receiveInFlight = true
        } catch {
            webSeedPool.table.release(slot)
            failure = .io(error)
        }
    }

    /// A completion whose token carries ``WebSeedPool/owner``.
    func webSeedCompleted(_ completion: Completion, now: UInt64) {
        // A linked timeout's own completion says nothing the connect's will not.
        guard completion.token.kind != .linkTimeout, let webSeedPool,
            let operation = webSeedPool.table.context(for: completion.slot)
        else { return }
        webSeedPool.table.release(completion.slot)
        let (seed, connection) = (operation.seed, operation.connection)
        let result = completion.result
        actions.removeAll(keepingCapacity: true)
        defer {
            connection.releaseIfIdle()
            perform(actions)
        }
        switch completion.token.kind {
        case .connect:
            connection.connectInFlight = false
            guard !connection.closing else { return }
            guard result == 0 else {
                let reason =
                    result == -ECANCELED ? "connect timed out" : "connect: \(Errno(rawValue: -result))"
                closeWebSeedConnection(seed)
                backOff(seed, reason: reason, now: now)
                return
            }
            connection.connected = true
            do throws(TLSError) {
                try connection.startTLS()
            } catch {
                tlsFailed(seed, connection, error, now: now)
                return
            }
            sendNextWebSeedBytes(seed, connection)
            armWebSeedReceive(seed, connection)
            if !seed.unchoked {
                seed.unchoked = true
                pipeline.peerUnchokedUs(seed.slot, at: Instant(nanoseconds: now), into: &actions)
            }
        case .send:
            connection.sendInFlight = false
            guard !connection.closing else { return }
            guard result > 0 else {
                webSeedConnectionEnded(seed, reason: "send: \(Errno(rawValue: -result))", now: now)
                return
            }
            connection.sendOffset += Int(result)
            if connection.sendOffset < connection.sending.count {
                submitWebSeedSend(seed, connection)
            } else {
                sendNextWebSeedBytes(seed, connection)
            }
        case .receive:
            connection.receiveInFlight = false
            guard !connection.closing else { return }
            guard result > 0 else {
                let reason = result == 0 ? "connection closed" : "recv: \(Errno(rawValue: -result))"
                webSeedConnectionEnded(seed, reason: reason, now: now)
                return
            }
            let bytes = UnsafeRawBufferPointer(rebasing: connection.buffer[..<Int(result)])
            let plaintext: [UInt8]?
            do throws(TLSError) {
                plaintext = try connection.decrypt(bytes)
            } catch {
                tlsFailed(seed, connection, error, now: now)
                return
            }
            sendNextWebSeedBytes(seed, connection)
            let reading =
                plaintext.map { text in
                    text.isEmpty || text.withUnsafeBytes { receiveWebSeedBytes($0, from: seed, now: now) }
                } ?? receiveWebSeedBytes(bytes, from: seed, now: now)
            guard reading, seed.connection === connection else { return }
            if connection.tls?.closed == true {
                // The server ended the TLS session (close_notify): as a closed connection.
                webSeedConnectionEnded(seed, reason: "connection closed", now: now)
            } else {
                armWebSeedReceive(seed, connection)
            }
        default:
            break
        }
    }

    /// TLS failed (a certificate not trusted for the host, a broken session): said with its reason.
    private func tlsFailed(
        _ seed: WebSeedLink, _ connection: WebSeedConnection, _ error: TLSError, now: UInt64
    ) {
        closeWebSeedConnection(seed)
        webSeedFailed(seed, .tls(origin: connection.origin, reason: error.description), now: now)
    }

    private func closeWebSeedConnection(_ seed: WebSeedLink) {
        seed.connection?.close()
        seed.connection = nil
    }

    /// The connection ended by the server's doing. Between answers, the ranges not answered yet go out
    /// again on a new connection (servers close idle keep-alive connections, or after so many
    /// requests); in the middle of an answer, the seed rests.
    private func webSeedConnectionEnded(_ seed: WebSeedLink, reason: String, now: UInt64) {
        closeWebSeedConnection(seed)
        if seed.sent.isEmpty { return }
        if let parser = seed.parser, let error = parser.connectionClosed() {
            webSeedFailed(seed, error, now: now)
            return
        }
        seed.earlyCloses += 1
        guard seed.earlyCloses <= 3 else {
            backOff(seed, reason: "\(reason) \(seed.earlyCloses) times before answering", now: now)
            return
        }
        seed.queued.insert(contentsOf: seed.sent, at: 0)
        seed.sent.removeAll()
        seed.parser = nil
    }

    // MARK: Answers

    /// Feeds received bytes to the answers in order; false when the connection is no longer used.
    private func receiveWebSeedBytes(
        _ bytes: UnsafeRawBufferPointer, from seed: WebSeedLink, now: UInt64
    ) -> Bool {
        var rest = bytes
        while !rest.isEmpty {
            guard let fetch = seed.sent.first else {
                closeWebSeedConnection(seed)
                webSeedFailed(
                    seed, .status(code: 0, reason: "sent \(rest.count) bytes nobody asked for"), now: now)
                return false
            }
            var parser =
                seed.parser
                ?? RangeResponseParser(
                    range: fetch.plan.fileRange, fileLength: metainfo.files[fetch.plan.fileIndex].length)
            let start = fetch.plan.payloadOffset - fetch.plan.fileRange.lowerBound
            let consumed: Int
            let outcome: RangeResponseParser.Outcome
            do {
                (consumed, outcome) = try parser.feed(rest) { fileOffset, body in
                    deliver(body, at: start + fileOffset, from: seed, now: now)
                }
            } catch {
                closeWebSeedConnection(seed)
                webSeedFailed(seed, error, now: now)
                return false
            }
            seed.parser = parser
            if seed.dropped || seed.retryAt != nil { return false }
            rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            switch outcome {
            case .needMoreBytes:
                return true
            case .complete(let reusable):
                seed.sent.removeFirst()
                seed.parser = nil
                seed.backoff.succeeded()
                seed.earlyCloses = 0
                if !reusable {
                    closeWebSeedConnection(seed)
                    seed.queued.insert(contentsOf: seed.sent, at: 0)
                    seed.sent.removeAll()
                    return false
                }
            case .redirect(let location):
                let next: TrackerURL
                do {
                    next = try WebSeedURL.redirect(
                        from: fetch.url, to: location, redirectsSoFar: fetch.redirects)
                } catch {
                    closeWebSeedConnection(seed)
                    webSeedFailed(seed, error, now: now)
                    return false
                }
                log("web seed \(seed.name): \(fetch.url) redirected to \(next)")
                seed.fileURLs[fetch.plan.fileIndex] = next
                var again = seed.sent
                for index in again.indices where again[index].plan.fileIndex == fetch.plan.fileIndex {
                    again[index].url = next
                    again[index].redirects = fetch.redirects + 1
                }
                closeWebSeedConnection(seed)
                seed.queued.insert(contentsOf: again, at: 0)
                seed.sent.removeAll()
                seed.parser = nil
                return false
            case .busy(let retryAfter):
                closeWebSeedConnection(seed)
                backOff(seed, reason: "busy (HTTP 503/429)", retryAfterSeconds: retryAfter, now: now)
                return false
            }
        }
        return true
    }

    /// Copies body bytes that start at `payloadOffset` into their blocks' piece buffers; a block whose
    /// bytes are all in goes to the pipeline like a peer's.
    private func deliver(
        _ bytes: UnsafeRawBufferPointer, at payloadOffset: Int64, from seed: WebSeedLink, now: UInt64
    ) {
        // A seed dropped while its answer is read (its piece failed) delivers nothing more.
        guard !seed.dropped else { return }
        seed.lastProgress = now
        var position = payloadOffset
        var rest = bytes
        while !rest.isEmpty {
            let piece = PieceIndex(UInt32(position / Int64(geometry.pieceLength)))
            let inPiece = Int(position - geometry.offset(of: piece))
            let block = geometry.block(inPiece / Int(geometry.blockLength), of: piece)
            let offsetInBlock = inPiece - Int(block.offset)
            let take = min(rest.count, Int(block.length) - offsetInBlock)
            let part = UnsafeRawBufferPointer(rebasing: rest[..<take])
            if !seed.unusableBlocks.contains(block)
                && !copyBlockData(block, offsetInBlock: offsetInBlock, payload: Span(_unsafeBytes: part))
            {
                seed.unusableBlocks.insert(block)
            }
            let received = seed.blockBytes[block, default: 0] + take
            if received < Int(block.length) {
                seed.blockBytes[block] = received
            } else {
                seed.blockBytes[block] = nil
                if seed.unusableBlocks.remove(block) != nil {
                    pipeline.requestReturned(
                        block, from: seed.slot, at: Instant(nanoseconds: now), into: &actions)
                } else if blockAccepted(block, from: seed.slot, now: now) {
                    seed.receivedBytes += Int64(block.length)
                }
            }
            position += Int64(take)
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
        }
    }

    // MARK: Failures

    /// Drops a seed whose error condemns it; otherwise it rests.
    private func webSeedFailed(_ seed: WebSeedLink, _ error: WebSeedError, now: UInt64) {
        if error.dropsSeed {
            dropWebSeed(seed, reason: "\(error)", now: now)
        } else {
            backOff(seed, reason: "\(error)", now: now)
        }
    }

    /// The seed rests: its blocks go back to the pipeline, and it is asked again after the back-off.
    private func backOff(_ seed: WebSeedLink, reason: String, retryAfterSeconds: Int? = nil, now: UInt64) {
        guard !seed.dropped else { return }
        let seconds = seed.backoff.failed(retryAfterSeconds: retryAfterSeconds)
        log("web seed \(seed.name): \(reason); trying again in \(seconds) s")
        closeWebSeedConnection(seed)
        seed.retryAt = now + UInt64(seconds) * 1_000_000_000
        seed.clearWork()
        if seed.unchoked {
            seed.unchoked = false
            pipeline.peerChokedUs(seed.slot)
        }
    }

    /// The seed is of no use: said once, its blocks go to others, and its slot is free for peers.
    func dropWebSeed(_ seed: WebSeedLink, reason: String, now: UInt64) {
        guard !seed.dropped else { return }
        log("web seed \(seed.name): dropped: \(reason)")
        logTotals(seed)
        closeWebSeedConnection(seed)
        seed.clearWork()
        seed.retryAt = nil
        if pipeline.isConnected(seed.slot) { pipeline.peerDisconnected(seed.slot) }
        seed.dropped = true
    }

    /// One line per seed with its payload total, like peers' (tests tell from these who sent what).
    private func logTotals(_ seed: WebSeedLink) {
        guard seed.receivedBytes > 0 else { return }
        log("web seed \(seed.name) totals: received \(seed.receivedBytes) payload bytes")
    }

    /// BEP 19: a seed that sent a piece failing its hash check is discarded.
    func dropWebSeeds(amongSenders senders: [PeerSlot], of piece: PieceIndex, now: UInt64) {
        for sender in senders {
            guard let seed = webSeed(at: sender) else { continue }
            dropWebSeed(seed, reason: "sent \(piece), which failed its hash check", now: now)
        }
    }
}
