import Buffers
import Glibc
import Hashing
import Metainfo
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

// Peer links: connecting, accepting, receiving, the encryption opening, parsing.
extension DownloadSession {
    // MARK: Connections

    func connectToCandidates() {
        // A torrent on its way out takes no new peers (a tracker's last reply may still bring some).
        guard isTrading else { return }
        let now = nowNanoseconds
        let connectedCount = links.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        let chosen = peerDirectory.takeCandidates(
            limit: options.maximumPeers - connectedCount, at: Instant(nanoseconds: now))
        for address in chosen {
            if bannedHosts.contains(address.with(port: 0)) {
                peerDirectory.ban(address)
            } else if !connect(to: address) {
                peerDirectory.untried(address)
            }
        }
    }

    /// Starts connecting to `address`; false when no connection can be afforded now.
    func connect(to address: SocketAddress) -> Bool {
        guard options.sharedConnectionBudget?.acquire() ?? true else { return false }
        guard let fd = try? Socket.makeTCP(family: address.family) else {
            options.sharedConnectionBudget?.release()
            return false
        }
        let link = makeLink(fd: fd, address: address, initiatedLocally: true)
        do {
            try ring.enqueue(.connect(fd: fd, address: address), for: link.operationSlot, flags: .link)
            try ring.enqueue(.linkTimeout(.seconds(10)), for: link.operationSlot)
            link.connectInFlight = true
            noteStart(.firstConnect, now: nowNanoseconds)
        } catch {
            failure = .io(error)
        }
        return true
    }

    /// A table entry for a new connection, reusing a free one (with a new generation).
    func makeLink(fd: Int32, address: SocketAddress, initiatedLocally: Bool) -> PeerLink {
        Socket.setNoDelay(fd)
        let index = links.indices.first { links[$0] == nil && !isWebSeedSlot($0) } ?? links.count
        if index == links.count {
            links.append(nil)
            linkGenerations.append(0)
        }
        linkGenerations[index] &+= 1
        let connection = PeerConnection(
            geometry: geometry, infoHash: metainfo.wireInfoHash,
            alternativeInfoHash: metainfo.hybridV2WireInfoHash, localPeerID: localPeerID,
            localPieces: verified, initiatedLocally: initiatedLocally)
        let link = PeerLink(
            slot: PeerSlot(UInt32(index)), generation: linkGenerations[index], tenant: tenant,
            address: address,
            fd: fd, connection: connection, initiatedLocally: initiatedLocally)
        links[index] = link
        return link
    }

    func armAccept() {
        guard listenerFD >= 0, isTrading, !acceptArmed else { return }
        do {
            try ring.enqueue(
                .accept(fd: listenerFD, multishot: ring.features.contains(.multishotAccept)),
                for: listenerSlot)
            acceptArmed = true
        } catch {
            failure = .io(error)
        }
    }

    /// Stops listening: an accept on the ring holds the socket open after `close`, still listening
    /// on its port (a restart could not bind it again) and handing what it accepts to whoever gets
    /// this tenant next. `shutdown` ends the accept; the torrent leaves once its completion came.
    func stopListening() {
        guard listenerFD >= 0 else { return }
        Glibc.shutdown(listenerFD, Int32(SHUT_RDWR))
        // Cancelled as well, as a link's receive is (`shutdown(_:)`): a shutdown alone may not end it.
        guard acceptArmed else { return }
        _ = try? ring.enqueue(
            .cancel(CompletionToken(slot: listenerSlot, kind: .accept), all: true),
            for: OperationSlot(
                owner: Self.peerOwner, tenant: tenant, index: OperationSlot.maximumIndex, generation: 0))
    }

    private var listenerSlot: OperationSlot {
        OperationSlot(owner: Self.listenerOwner, tenant: tenant, index: 0, generation: 1)
    }

    func acceptCompleted(_ completion: Completion, now: UInt64) {
        if !completion.hasMore { acceptArmed = false }
        guard isTrading else {
            if completion.result >= 0 {
                refuseIncoming(completion.result, reason: "the torrent is stopping", now: now)
            }
            return
        }
        guard completion.result >= 0 else {
            // Out of descriptors (or memory), a new accept would fail at once, again and again, while
            // peers wait in the backlog: try again on a later tick, and say so once per reason.
            let errno = Errno(rawValue: -completion.result)
            if loggedAcceptErrors.insert(errno).inserted {
                log("accept: \(errno); incoming peers wait until it clears (said once)")
            }
            if !completion.hasMore { acceptRetryAt = now + Self.acceptRetryNanoseconds }
            return
        }
        if !completion.hasMore { armAccept() }
        adoptIncoming(completion.result, now: now)
    }

    /// An incoming connection, accepted here or routed from an `IncomingRouter`: it starts by reading
    /// the peer's handshake.
    /// An accepted socket becomes a link. `plaintextRead`: the router already answered the peer's
    /// encryption exchange and read these plain bytes from it.
    func adoptIncoming(_ fd: Int32, plaintextRead: [UInt8]? = nil, now: UInt64) {
        // The listener stays open until the torrent is gone; what it accepts after its links were
        // closed must not take their slots, which the request pipeline still counts.
        guard isTrading else {
            refuseIncoming(fd, reason: "the torrent is stopping", now: now)
            return
        }
        let connectedCount = links.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        guard connectedCount < options.maximumPeers, let address = try? Socket.peerAddress(of: fd) else {
            refuseIncoming(fd, reason: "\(options.maximumPeers) peers already", now: now)
            return
        }
        guard !bannedHosts.contains(address.with(port: 0)) else {
            refuseIncoming(fd, reason: "banned", now: now)
            return
        }
        guard options.sharedConnectionBudget?.acquire() ?? true else {
            let limit = options.sharedConnectionBudget?.limit ?? 0
            refuseIncoming(fd, reason: "\(limit) connections already across all torrents", now: now)
            return
        }
        let link = makeLink(fd: fd, address: address, initiatedLocally: false)
        link.connected = true
        link.connection.start(now: Instant(nanoseconds: now))
        if let plaintextRead {
            link.openingSeen = true
            if !plaintextRead.isEmpty { plaintextRead.withUnsafeBytes { parse($0, link: link, now: now) } }
        }
        if !link.closing { armReceive(link) }
    }

    /// Closes a connection we cannot hold. A flood of thousands is said in a line a second at most: the
    /// first refusal, then how many more and why (`sumUpRefusals`).
    func refuseIncoming(_ fd: Int32, reason: String, now: UInt64) {
        Glibc.close(fd)
        if reason != lastRefusalReason { sumUpRefusals(now: now, force: true) }
        lastRefusalReason = reason
        if now >= lastRefusalLogNanoseconds + 1_000_000_000 {
            lastRefusalLogNanoseconds = now
            log("refused an incoming connection: \(reason)")
        } else {
            unsaidRefusals += 1
        }
    }

    func sumUpRefusals(now: UInt64, force: Bool = false) {
        guard unsaidRefusals > 0, force || now >= lastRefusalLogNanoseconds + 1_000_000_000 else { return }
        lastRefusalLogNanoseconds = now
        log("refused \(unsaidRefusals) more incoming connections: \(lastRefusalReason)")
        unsaidRefusals = 0
    }

    func link(for slot: OperationSlot) -> PeerLink? {
        let index = Int(slot.index)
        guard index < links.count, let link = links[index], link.generation == slot.generation else {
            return nil
        }
        return link
    }

    func route(_ completion: Completion, now: UInt64) {
        switch completion.slot.owner {
        case Self.peerOwner:
            peerCompleted(completion, now: now)
        case Self.listenerOwner:
            acceptCompleted(completion, now: now)
        case TrackerClient.owner:
            trackerCompleted(completion, now: now)
        case WebSeedPool.owner:
            webSeedCompleted(completion, now: now)
        case PieceStore.completionOwner:
            var events: [StorageEvent] = []
            store.handle(completion, into: &events)
            for event in events { storageEvent(event, now: now) }
        default:
            break
        }
    }

    func peerCompleted(_ completion: Completion, now: UInt64) {
        guard let link = link(for: completion.slot) else {
            // A late completion for a closed link: only a provided buffer needs giving back.
            if let id = completion.bufferID { providedBuffers?.recycle(id) }
            return
        }
        switch completion.token.kind {
        case .connect:
            link.connectInFlight = false
            if completion.result == 0 {
                link.connected = true
                noteStart(.connected, now: now)
                link.connection.start(now: Instant(nanoseconds: now))
                armReceive(link)
            } else {
                // A link closed while connecting is released below, whichever of the connect and its
                // linked timeout completes last (io_uring promises no order between them).
                disconnect(link, reason: "connect: \(Errno(rawValue: -completion.result))", now: now)
            }
        case .linkTimeout:
            break
        case .receive:
            receiveCompleted(completion, link: link, now: now)
        case .send, .sendMessage:
            sendCompleted(completion, link: link, now: now)
        default:
            break
        }
        if link.closing && !link.hasOperationsInFlight { release(link) }
    }

    func armReceive(_ link: PeerLink) {
        guard !link.receiveInFlight, !link.closing else { return }
        let operation: Operation
        if let providedBuffers {
            operation = .receiveProvided(fd: link.fd, group: providedBuffers.group, multishot: true)
        } else {
            if link.receiveBuffer == nil {
                link.receiveBuffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 64)
            }
            operation = .receive(fd: link.fd, into: link.receiveBuffer!)
        }
        do {
            try ring.enqueue(operation, for: link.operationSlot)
            link.receiveInFlight = true
        } catch {
            failure = .io(error)
        }
    }

    func receiveCompleted(_ completion: Completion, link: PeerLink, now: UInt64) {
        if !completion.hasMore { link.receiveInFlight = false }
        if completion.result == -ENOBUFS {
            // Every receive buffer handed out is in use: hand out more if there are, or wait for
            // those to come back as peers' data is parsed.
            if providedBuffers?.grow() == true {
                armReceive(link)
                return
            }
            armReceiveLater(link)
            return
        }
        guard completion.result > 0 else {
            if let id = completion.bufferID { providedBuffers?.recycle(id) }
            disconnect(
                link,
                reason: completion.result == 0
                    ? "closed by peer" : "recv: \(Errno(rawValue: -completion.result))", now: now)
            return
        }
        guard !link.closing else {
            // A multishot receive still delivers what arrived before the shutdown: nobody reads it now.
            if let id = completion.bufferID { providedBuffers?.recycle(id) }
            return
        }
        let count = Int(completion.result)
        let bytes: UnsafeRawBufferPointer
        if let id = completion.bufferID, let providedBuffers {
            bytes = providedBuffers.bytes(id, count: count)
        } else if let buffer = link.receiveBuffer {
            bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
        } else {
            return
        }
        if link.openingSeen && link.encryption == nil {
            parse(bytes, link: link, now: now)
        } else {
            receiveOpening(bytes, link: link, now: now)
        }
        if let id = completion.bufferID { providedBuffers?.recycle(id) }
        if !link.receiveInFlight && !link.closing { armReceive(link) }
    }

    /// An incoming peer's first bytes: the plain handshake starts with 19 ("\u{13}BitTorrent
    /// protocol"); anything else is taken for the encryption exchange (MSE/PE), which ends with plain
    /// peer wire from then on (Potluck selects plaintext, so uploads stay zero-copy).
    func receiveOpening(_ bytes: UnsafeRawBufferPointer, link: PeerLink, now: UInt64) {
        guard !link.openingSeen else { return advanceEncryption(bytes, link: link, now: now) }
        // The first 20 bytes decide: a plain handshake's protocol name, or anything else (an MSE key,
        // whose first byte alone is 19, like the name's length, once in 256 connections).
        link.openingBytes.append(contentsOf: bytes)
        let opening = link.openingBytes
        switch HandshakePrefix.classify(opening) {
        case .needMore where opening.count < 1 + Handshake.protocolName.count:
            return
        case .needMore, .infoHash:
            link.openingSeen = true
            link.openingBytes = []
            opening.withUnsafeBytes { parse($0, link: link, now: now) }
        case .notBitTorrent:
            link.openingSeen = true
            link.openingBytes = []
            var privateKey = [UInt8](repeating: 0, count: 20)
            for index in privateKey.indices { privateKey[index] = UInt8.random(in: 0...255) }
            let padding = (0..<Int.random(in: 0...64)).map { _ in UInt8.random(in: 0...255) }
            link.encryption = EncryptionHandshakeResponder(
                knownInfoHashes: [metainfo.wireInfoHash] + (metainfo.hybridV2WireInfoHash.map { [$0] } ?? []),
                privateKey: privateKey, padding: padding)
            advanceEncryption(opening, link: link, now: now)
        }
    }

    /// The peer's next bytes of its encryption exchange.
    func advanceEncryption(_ bytes: some Collection<UInt8>, link: PeerLink, now: UInt64) {
        guard var exchange = link.encryption else { return }
        let step: EncryptionHandshakeResponder.Step
        do {
            step = try exchange.receive(bytes)
        } catch {
            link.encryption = nil
            disconnect(link, reason: "encrypted handshake refused: \(error)", now: now)
            return
        }
        link.connection.outbound += exchange.takeOutbound()
        switch step {
        case .needMoreBytes:
            link.encryption = exchange
        case .established(_, let plaintext):
            link.encryption = nil
            log("peer \(link.address): encrypted handshake (MSE/PE) done, plaintext selected")
            plaintext.withUnsafeBytes { parse($0, link: link, now: now) }
        }
    }

    func armReceiveLater(_ link: PeerLink) {
        receivesToRearm.append(link)
    }

    /// Feeds received bytes to the connection; copies block payloads into their piece buffers on the way.
    func parse(_ bytes: UnsafeRawBufferPointer, link: PeerLink, now: UInt64) {
        pendingEvents.removeAll(keepingCapacity: true)
        let time = Instant(nanoseconds: now)
        do {
            let span = Span<UInt8>(_unsafeBytes: bytes)
            try link.connection.receive(span, now: time) { event in
                switch event {
                case .handshakeCompleted(_, let negotiated):
                    pendingEvents.append(
                        .handshake(extensionProtocol: negotiated.contains(.extensionProtocol)))
                case .extended(let id, let payload) where id == 0:
                    var bytes = [UInt8]()
                    bytes.reserveCapacity(payload.count)
                    for i in payload.indices { bytes.append(payload[i]) }
                    pendingEvents.append(.extensionHandshake(bytes))
                case .extended(let id, let payload) where id == Self.metadataExtensionID:
                    var bytes = [UInt8]()
                    bytes.reserveCapacity(payload.count)
                    for i in payload.indices { bytes.append(payload[i]) }
                    pendingEvents.append(.metadataMessage(bytes))
                case .extended(let id, let payload) where id == Self.peerExchangeExtensionID:
                    pendingEvents.append(.peerExchangeMessage([UInt8](copying: payload)))
                case .peerBitfield: pendingEvents.append(.bitfield)
                case .peerHasAll: pendingEvents.append(.haveAll)
                case .peerHasNone: pendingEvents.append(.haveNone)
                case .peerHas(let piece): pendingEvents.append(.have(piece))
                case .peerChokedUs: pendingEvents.append(.choked)
                case .peerInterested: pendingEvents.append(.interested)
                case .peerNotInterested: pendingEvents.append(.notInterested)
                case .peerUnchokedUs: pendingEvents.append(.unchoked)
                case .blockData(let block, let offsetInBlock, let payload):
                    // A block whose first bytes found no buffer is dropped whole, or its later bytes
                    // could land beside a gap. One another peer is writing is staged (endgame, or
                    // after a choke), so that the two never mix in the buffer.
                    let ends = offsetInBlock + payload.count == Int(block.length)
                    if offsetInBlock == 0 {
                        link.droppingBlock = nil
                        link.stagedBlock = claimBlock(block, for: link) ? nil : block
                        if link.stagedBlock != nil { link.staging.removeAll(keepingCapacity: true) }
                    } else if link.stagedBlock != block && blockWriters[block] != link.slot {
                        link.droppingBlock = block
                    }
                    var copied = false
                    if link.stagedBlock == block {
                        payload.withUnsafeBufferPointer { link.staging.append(contentsOf: $0) }
                        if ends {
                            link.stagedBlock = nil
                            copied = copyBlockData(block, offsetInBlock: 0, payload: link.staging.span)
                            // Whole and first: the peer still writing it gives it up, its later bytes
                            // dropped.
                            if copied { blockWriters[block] = nil }
                        }
                    } else if link.droppingBlock != block {
                        copied = copyBlockData(block, offsetInBlock: offsetInBlock, payload: payload)
                        if !copied { link.droppingBlock = block }
                    }
                    if ends {
                        if blockWriters[block] == link.slot { blockWriters[block] = nil }
                        pendingEvents.append(copied ? .blockComplete(block) : .blockUnused(block))
                    }
                case .requestRejected(let block): pendingEvents.append(.rejected(block))
                case .requestReceived(let block): pendingEvents.append(.request(block))
                case .hashRequested(let request): pendingEvents.append(.hashRequest(request))
                default: break
                }
            }
        } catch {
            disconnect(link, reason: "protocol: \(error)", now: now)
            return
        }
        let instant = Instant(nanoseconds: now)
        actions.removeAll(keepingCapacity: true)
        for event in pendingEvents {
            // An event that ended the connection (a malformed extension message) leaves the peer out of
            // the pipeline and the choker, which must not hear of it again.
            if link.closing { break }
            switch event {
            case .handshake(let extensionProtocol):
                noteStart(.handshake, now: now)
                pipeline.peerConnected(link.slot)
                choker.peerConnected(link.slot, at: instant)
                if extensionProtocol {
                    _ = link.connection.sendExtended(id: 0, payload: localExtensionHandshake().span)
                }
            case .extensionHandshake(let payload):
                // BEP 10: `reqq` bounds how many requests the peer queues; more would be dropped.
                if let theirs = try? ExtensionHandshake(decoding: payload) {
                    if let length = theirs.requestQueueLength {
                        pipeline.peerAdvertisedRequestQueue(link.slot, length: length)
                    }
                    peerExtensionsKnown(theirs, link: link)
                    peerExchangeKnown(theirs, link: link)
                }
            case .metadataMessage(let payload):
                metadataMessageReceived(payload, link: link, now: now)
            case .peerExchangeMessage(let payload):
                peerExchangeMessageReceived(payload, link: link, now: now)
            case .bitfield:
                pipeline.peerBitfield(link.slot, link.connection.peerPieces, into: &actions)
            case .haveAll:
                pipeline.peerHaveAll(link.slot, into: &actions)
            case .haveNone:
                pipeline.peerHaveNone(link.slot, into: &actions)
            case .have(let piece):
                pipeline.peerHave(link.slot, piece, into: &actions)
            case .choked:
                pipeline.peerChokedUs(link.slot)
            case .unchoked:
                noteStart(.unchoked, now: now)
                pipeline.peerUnchokedUs(link.slot, at: instant, into: &actions)
            case .blockComplete(let block):
                blockCompleted(block, from: link, now: now)
            case .rejected(let block), .blockUnused(let block):
                // Open again at once: waiting for a snub timeout would stall the piece for seconds.
                pipeline.requestReturned(block, from: link.slot, at: instant, into: &actions)
            case .request(let block):
                enqueueUpload(block, for: link)
            case .hashRequest(let request):
                answerHashRequest(request, link: link, now: now)
            case .interested:
                choker.peerInterested(link.slot, at: instant, into: &chokeActions)
            case .notInterested:
                choker.peerNotInterested(link.slot, at: instant, into: &chokeActions)
            }
        }
        perform(actions)
        performChokes()
        serveUploads()
    }
}

// MARK: Ending connections

extension DownloadSession {
    func ban(_ peer: PeerSlot, reason: String, now: UInt64) {
        guard let link = links[Int(peer.value)] else { return }
        peerDirectory.ban(link.address)
        // By host: a peer that dialled us came from a passing port, and would dial again.
        bannedHosts.insert(link.address.with(port: 0))
        disconnect(link, reason: "banned: \(reason)", now: now)
    }

    func disconnect(_ link: PeerLink, reason: String, now: UInt64) {
        guard !link.closing else { return }
        log("peer \(link.address): \(reason)")
        logTotals(link)
        link.closing = true
        if pipeline.isConnected(link.slot) { pipeline.peerDisconnected(link.slot) }
        if choker.isConnected(link.slot) {
            choker.peerDisconnected(link.slot, at: Instant(nanoseconds: now), into: &chokeActions)
            performChokes()
        }
        // Tried again after a back-off: 1 s, 2 s, 4 s … up to a minute.
        peerDirectory.disconnected(link.address, at: Instant(nanoseconds: now))
        shutdown(link)
        if !link.hasOperationsInFlight { release(link) }
    }

    /// One line per connection with its payload totals (tests tell from these who traded with whom).
    func logTotals(_ link: PeerLink) {
        let connection = link.connection
        guard connection.downloadedPayloadBytes > 0 || connection.uploadedPayloadBytes > 0 else { return }
        log(
            "peer \(link.address) totals: received \(connection.downloadedPayloadBytes) sent \(connection.uploadedPayloadBytes) payload bytes"
        )
    }

    /// Ends the socket; operations still in flight complete with errors and then the link is released.
    /// The multishot receive is cancelled as well: a shutdown alone does not always end one. It can
    /// miss the end of the stream (liburing issue 1549); here, on Linux 6.18, about one full-disk stop
    /// in 15 kept a receive armed on a socket already closed, and the torrent never left.
    func shutdown(_ link: PeerLink) {
        ring.shutdown(socket: link.fd)
        if link.receiveInFlight { cancel(.receive, of: link) }
    }

    /// Cancels the link's operation of `kind`; the cancel's own completion names no link.
    func cancel(_ kind: OperationKind, of link: PeerLink) {
        _ = try? ring.enqueue(
            .cancel(CompletionToken(slot: link.operationSlot, kind: kind), all: true),
            for: OperationSlot(
                owner: Self.peerOwner, tenant: tenant, index: OperationSlot.maximumIndex, generation: 0))
    }

    /// Makes `link` the one peer whose bytes of `block` go straight into its piece buffer, unless another
    /// peer still asked for it is writing it (then `link` stages its copy). Bytes of one block from two
    /// peers were mixed and credited to whoever completed it: a liar trickling garbage into a block an
    /// honest peer was sending had the piece fail on the honest one, whom block digests then banned. A
    /// writer no longer asked for the block (snubbed, choked, cancelled) gives it up to the next peer
    /// that starts it.
    func claimBlock(_ block: BlockRange, for link: PeerLink) -> Bool {
        if let writer = blockWriters[block], writer != link.slot,
            pipeline.picker.requesters(of: block).contains(writer)
        {
            return false
        }
        blockWriters[block] = link.slot
        return true
    }

    func release(_ link: PeerLink) {
        let index = Int(link.slot.value)
        guard index < links.count, links[index] === link else { return }
        if !blockWriters.isEmpty { blockWriters = blockWriters.filter { $0.value != link.slot } }
        Glibc.close(link.fd)
        releasePayloads(&link.payloads)
        releasePayloads(&link.sendingPayloads)
        links[index] = nil
        // Every link took one connection from the shared budget when it was made.
        options.sharedConnectionBudget?.release()
    }
}
