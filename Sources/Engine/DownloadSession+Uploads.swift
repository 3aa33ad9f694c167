import Buffers
import Glibc
import Hashing
import Metainfo
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

// The upload server: chokes, request queues, the piece cache, block reads, sending.
extension DownloadSession {
    // MARK: Uploading

    func performChokes() {
        for action in chokeActions {
            switch action {
            case .choke(let peer): links[Int(peer.value)].map { _ = $0.connection.choke() }
            case .unchoke(let peer): links[Int(peer.value)].map { _ = $0.connection.unchoke() }
            }
        }
        chokeActions.removeAll(keepingCapacity: true)
        limitUploadCache()
    }

    /// Serves waiting requests, one per peer in turn (so a peer that queues many requests does not
    /// starve the others), while the upload limit, the cache and the upload buffers allow. A block of a
    /// cached piece is queued for sending at once from the cache, and one whose pages are in the page
    /// cache is sent straight from there; any other piece is read whole into the cache (a popular piece
    /// is then read once for every peer); when the cache is all pinned or loading, a block is read into
    /// an upload buffer. Back-pressure: requests wait in their link's
    /// queue, bounded by the connection's request limit, and each link has at most
    /// `maximumQueuedPayloadsPerLink` blocks read or queued unsent.
    func serveUploads() {
        guard !stopping, !links.isEmpty else { return }
        let now = Instant(nanoseconds: nowNanoseconds)
        var progressed = true
        while progressed {
            progressed = false
            for _ in 0..<links.count {
                uploadCursor = uploadCursor + 1 < links.count ? uploadCursor + 1 : 0
                guard let link = links[uploadCursor], !link.closing,
                    link.uploadQueueHead < link.uploadQueue.count
                else { continue }
                switch serveNextRequest(of: link, now: now) {
                case .served: progressed = true
                case .waiting: continue
                case .outOfResources: return
                }
            }
        }
    }

    enum ServeOutcome {
        /// The request at the head of the queue was served, read, or dropped.
        case served
        /// This link must wait (its piece is loading, or it has enough queued).
        case waiting
        /// No link can be served now (upload limit, no upload buffer).
        case outOfResources
    }

    func serveNextRequest(of link: PeerLink, now: Instant) -> ServeOutcome {
        guard link.payloads.count + link.readsInFlight < Self.maximumQueuedPayloadsPerLink else {
            return .waiting
        }
        let block = link.uploadQueue[link.uploadQueueHead]
        // Cancelled, or dropped by a choke, since: not worth a read.
        guard link.connection.isIncomingRequestQueued(block), verified.contains(block.piece) else {
            popUploadRequest(link)
            return .served
        }
        guard uploadLimiter.allows() else {
            uploadThrottled = true
            return .outOfResources
        }
        // At least two pieces, or the cache would serialise peers behind one read.
        if pieceCache == nil, options.uploadCacheBytes >= 2 * metainfo.pieceLength {
            pieceCache = PieceCache(
                pieceLength: metainfo.pieceLength,
                capacity: min(1024, metainfo.pieceCount, options.uploadCacheBytes / metainfo.pieceLength))
            limitUploadCache()
        }
        // In place (`pieceCache!`): a copy of the cache would copy its table on every request.
        let cacheable = pieceCache != nil && (uncachedPieces.isEmpty || !uncachedPieces.contains(block.piece))
        if cacheable {
            switch pieceCache!.lookup(block.piece) {
            case .ready(let slot):
                popUploadRequest(link)
                let start = Int(block.offset)
                let bytes = UnsafeRawBufferPointer(
                    rebasing: pieceCache!.pool.bytes(of: slot)[start..<start + Int(block.length)])
                if queuePayload(block, bytes: bytes, source: .cachedPiece(block.piece), link: link, now: now)
                {
                    pieceCache!.pin(block.piece)
                    uploadLimiter.spend(Int(block.length))
                }
                return .served
            case .loading:
                return .waiting
            case .absent:
                break
            }
        }
        // Already in the page cache: sent from there, with no read into our memory first.
        if let resident = store.residentBlock(block, now: nowNanoseconds) {
            popUploadRequest(link)
            if queuePayload(
                block, bytes: resident.bytes, source: .pageCache(resident.mapping), link: link, now: now)
            {
                uploadLimiter.spend(Int(block.length))
            } else {
                resident.mapping.unpin()
            }
            return .served
        }
        if cacheable, let slot = pieceCache!.beginLoad(block.piece) {
            store.readPiece(block.piece, into: slot, in: pieceCache!.pool)
            return .waiting
        }
        // No cache, or every slot is loading or pinned: read just the block.
        guard let buffer = uploadBuffers.lease() else { return .outOfResources }
        popUploadRequest(link)
        uploadLimiter.spend(Int(block.length))
        link.readsInFlight += 1
        uploadLeases[Int(buffer.index)] = buffer
        let token = UInt64(link.slot.value) | UInt64(link.generation) << 32 | UInt64(buffer.index) << 48
        store.readBlock(block, into: buffer, in: uploadBuffers, token: token)
        return .served
    }

    /// The upload cache's share per peer being served: the piece being sent, the next one loading, and
    /// room for requests that straddle pieces. A seed serving one peer then holds 4 MiB of cache, not
    /// `uploadCacheBytes`, which stays the ceiling for many.
    static let uploadCacheBytesPerServedPeer = 4 << 20

    /// Sizes the upload cache to the peers we unchoked that want data (at least one).
    func limitUploadCache() {
        guard pieceCache != nil else { return }
        var served = 0
        for case let link? in links where !link.connection.amChoking && link.connection.peerInterested {
            served += 1
        }
        let piecesPerPeer = max(2, Self.uploadCacheBytesPerServedPeer / metainfo.pieceLength)
        pieceCache!.setLimit(max(1, served) * piecesPerPeer)
    }

    /// Queues a request the connection accepted. The connection holds at most its request limit, but
    /// requests it dropped since (cancelled, or refused by a choke) stay here until served: a peer that
    /// requests and cancels over and over while uploads wait would grow the queue without end, so past
    /// twice the limit the dropped ones, and the copies of a block cancelled and asked for again (all
    /// queued again by then), are swept out: the queue then holds at most the limit, so sweeps stay rare.
    func enqueueUpload(_ block: BlockRange, for link: PeerLink) {
        if link.uploadQueue.count - link.uploadQueueHead >= 2
            * link.connection.options.maximumIncomingRequests
        {
            link.uploadQueue.removeFirst(link.uploadQueueHead)
            link.uploadQueueHead = 0
            var kept = Set<BlockRange>(minimumCapacity: link.connection.options.maximumIncomingRequests)
            link.uploadQueue.removeAll {
                !link.connection.isIncomingRequestQueued($0) || !kept.insert($0).inserted
            }
        }
        link.uploadQueue.append(block)
    }

    func popUploadRequest(_ link: PeerLink) {
        link.uploadQueueHead += 1
        if link.uploadQueueHead == link.uploadQueue.count {
            link.uploadQueue.removeAll(keepingCapacity: true)
            link.uploadQueueHead = 0
        } else if link.uploadQueueHead >= 256 {
            link.uploadQueue.removeFirst(link.uploadQueueHead)
            link.uploadQueueHead = 0
        }
    }

    /// Queues a piece header in the connection's outbound bytes and the payload after it, to be sent
    /// from `bytes` without copying; false (nothing queued) if the request is no longer wanted.
    func queuePayload(
        _ block: BlockRange, bytes: UnsafeRawBufferPointer, source: QueuedPayload.Source, link: PeerLink,
        now: Instant
    ) -> Bool {
        guard !link.closing, let position = link.connection.sendBlockHeader(block) else { return false }
        link.payloads.append(QueuedPayload(position: position, bytes: bytes, source: source))
        uploadedBytes += Int64(block.length)
        uploadRate.record(bytes: Int(block.length), at: now)
        choker.sentPayload(to: link.slot, bytes: Int(block.length), at: now)
        return true
    }

    /// A piece read for the cache: serve the requests waiting for it.
    func cachedPieceRead(_ piece: PieceIndex) {
        pieceCache?.loadCompleted(piece)
        serveUploads()
    }

    /// A block read into an upload buffer: queue it for sending, unless the peer cancelled or went away.
    func uploadRead(token: UInt64, block: BlockRange, now: UInt64) {
        let index = Int(token & 0xffff_ffff)
        let generation = UInt16(truncatingIfNeeded: token >> 32)
        let bufferIndex = Int(token >> 48)
        guard bufferIndex < uploadLeases.count, let buffer = uploadLeases[bufferIndex] else { return }
        if index < links.count, let link = links[index], link.generation == generation {
            link.readsInFlight -= 1
            let bytes = UnsafeRawBufferPointer(
                rebasing: uploadBuffers.bytes(of: buffer)[..<Int(block.length)])
            if queuePayload(
                block, bytes: bytes, source: .uploadBuffer(buffer), link: link, now: Instant(nanoseconds: now)
            ) {
                // The buffer now belongs to the link's send; it is released once sent.
                uploadLeases[bufferIndex] = nil
            }
        }
        releaseUploadBuffer(token: token)
        serveUploads()
    }

    func releaseUploadBuffer(token: UInt64) {
        let bufferIndex = Int(token >> 48)
        guard bufferIndex < uploadLeases.count, let buffer = uploadLeases[bufferIndex] else { return }
        uploadLeases[bufferIndex] = nil
        uploadBuffers.release(buffer)
    }

    /// A block read failed (say, the file was removed under us): refuse the block, keep going.
    func uploadReadFailed(token: UInt64, block: BlockRange) {
        let index = Int(token & 0xffff_ffff)
        if index < links.count, let link = links[index],
            link.generation == UInt16(truncatingIfNeeded: token >> 32)
        {
            link.readsInFlight -= 1
            link.connection.rejectRequest(block)
        }
        releaseUploadBuffer(token: token)
        serveUploads()
    }

    /// Gives back what a payload held: its upload buffer, or its pin on a cached piece.
    func releasePayloads(_ payloads: inout [QueuedPayload]) {
        for payload in payloads {
            switch payload.source {
            case .uploadBuffer(let slot): uploadBuffers.release(slot)
            case .cachedPiece(let piece): pieceCache?.unpin(piece)
            case .pageCache(let mapping): mapping.unpin()
            }
        }
        payloads.removeAll(keepingCapacity: true)
    }

    // MARK: Sending

    func flushAllSends() {
        for link in receivesToRearm where !link.closing { armReceive(link) }
        receivesToRearm.removeAll(keepingCapacity: true)
        for case let link? in links where !link.sendInFlight && link.connected && !link.closing {
            startSend(link)
        }
    }

    /// Takes the connection's outbound bytes (and the payloads that go between them) as the next send.
    /// Without payloads it is one plain send; with them, one sendmsg whose ranges alternate between the
    /// outbound bytes and the payloads, which keeps the stream's order without copying a block.
    func startSend(_ link: PeerLink) {
        guard !link.connection.outbound.isEmpty else { return }
        swap(&link.sending, &link.connection.outbound)
        link.connection.outbound.removeAll(keepingCapacity: true)
        link.sendOffset = 0
        link.sendingVector = !link.payloads.isEmpty
        if link.sendingVector {
            swap(&link.sendingPayloads, &link.payloads)
            let vector =
                link.sendVector ?? SendVector(capacity: 2 * Self.maximumQueuedPayloadsPerLink + 1)
            link.sendVector = vector
            vector.removeAll()
            link.sending.withUnsafeBytes { outbound in
                var from = 0
                for payload in link.sendingPayloads {
                    vector.append(UnsafeRawBufferPointer(rebasing: outbound[from..<payload.position]))
                    vector.append(payload.bytes)
                    from = payload.position
                }
                vector.append(UnsafeRawBufferPointer(rebasing: outbound[from...]))
            }
        }
        enqueueSend(link)
    }

    func enqueueSend(_ link: PeerLink) {
        let operation: Operation
        if link.sendingVector, let vector = link.sendVector {
            operation = .sendMessage(fd: link.fd, vector: vector)
        } else {
            let bytes = link.sending.withUnsafeBytes {
                UnsafeRawBufferPointer(rebasing: $0[link.sendOffset...])
            }
            operation = .send(fd: link.fd, bytes: bytes)
        }
        do {
            try ring.enqueue(operation, for: link.operationSlot)
            link.sendInFlight = true
        } catch {
            failure = .io(error)
        }
    }

    func sendCompleted(_ completion: Completion, link: PeerLink, now: UInt64) {
        link.sendInFlight = false
        guard completion.result > 0 else {
            disconnect(link, reason: "send: \(Errno(rawValue: -completion.result))", now: now)
            return
        }
        let sent = Int(completion.result)
        let remaining: Int
        if link.sendingVector, let vector = link.sendVector {
            vector.advance(by: sent)
            remaining = vector.remainingBytes
        } else {
            link.sendOffset += sent
            remaining = link.sending.count - link.sendOffset
        }
        if remaining > 0 {
            enqueueSend(link)
        } else {
            link.sending.removeAll(keepingCapacity: true)
            releasePayloads(&link.sendingPayloads)
            link.sendingVector = false
            startSend(link)
            // Sent blocks free their link's share of the queue: serve more.
            if !link.uploadQueue.isEmpty { serveUploads() }
        }
    }
}
