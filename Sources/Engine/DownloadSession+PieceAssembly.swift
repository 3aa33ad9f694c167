import Buffers
import Glibc
import Hashing
import Metainfo
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

// Piece assembly: the one copy into piece buffers, hashing, writes, the piece-memory cap.
extension DownloadSession {
    /// Copies part of a block into its piece buffer; false when the block is not wanted (already in,
    /// or the piece is being hashed or written).
    func copyBlockData(_ block: BlockRange, offsetInBlock: Int, payload: Span<UInt8>) -> Bool {
        guard Self.picker(in: &pipeline, acceptsDataFor: block) else { return false }
        let slot: BufferSlot
        if let existing = assembling[block.piece] {
            slot = existing
        } else if let fresh = pieceBuffers.lease() {
            assembling[block.piece] = fresh
            slot = fresh
        } else {
            // Out of piece memory: the block is dropped and will be asked for again.
            droppedBlocks += 1
            return false
        }
        let memory = pieceBuffers.bytes(of: slot)
        let start = Int(block.offset) + offsetInBlock
        payload.withUnsafeBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: memory[start..<start + source.count]).copyMemory(
                from: source)
        }
        return true
    }

    /// Asked through an exclusive (inout) access: a plain read of the session's property copies the
    /// whole picker, retaining each of its arrays, for the call.
    private static func picker(in pipeline: inout RequestPipeline, acceptsDataFor block: BlockRange) -> Bool {
        pipeline.picker.acceptsData(for: block)
    }

    func blockCompleted(_ block: BlockRange, from link: PeerLink, now: UInt64) {
        guard blockAccepted(block, from: link.slot, now: now) else { return }
        choker.receivedPayload(from: link.slot, bytes: Int(block.length), at: Instant(nanoseconds: now))
    }

    /// A block whose bytes are all in its piece buffer, from a peer or a web seed: counted, and once its
    /// piece is complete, the piece is hashed. False when the pipeline did not want it.
    @discardableResult
    func blockAccepted(_ block: BlockRange, from sender: PeerSlot, now: UInt64) -> Bool {
        let receipt = pipeline.blockReceived(
            block, from: sender, at: Instant(nanoseconds: now), into: &actions)
        guard case .accepted(let pieceComplete) = receipt else { return false }
        noteStart(.firstBlock, now: now)
        lastBlockNanoseconds = now
        downloadedBytes += Int64(block.length)
        rate.record(bytes: Int(block.length), at: Instant(nanoseconds: now))
        guard pieceComplete, let slot = assembling[block.piece] else { return true }
        if metainfo.infoHashV1 != nil {
            // SHA-1 covers the whole piece, padding included: the zeros nobody was asked for go in here.
            if let dataBlocks = dataBlockCounts[block.piece] {
                let memory = pieceBuffers.bytes(of: slot)
                let padding = dataBlocks * Int(geometry.blockLength)..<geometry.length(of: block.piece)
                UnsafeMutableRawBufferPointer(rebasing: memory[padding]).initializeMemory(
                    as: UInt8.self, repeating: 0)
            }
            submitHash(slot, length: geometry.length(of: block.piece), kind: .sha1, piece: block.piece)
        } else if let check = metainfo.v2PieceCheck(block.piece) {
            // The file's own bytes: what a peer sent for the alignment gap after a file is in no hash.
            submitHash(
                slot, length: check.dataLength, kind: .merkleRoot(leafCount: check.leafCount),
                piece: block.piece)
        } else {
            // Nothing to check it against (a piece layer we lack): the piece cannot pass, by no peer's fault.
            pieceChecked(block.piece, in: slot, passed: false, isLocalFault: true, now: now)
        }
        return true
    }

    func pieceHashed(_ result: HashResult, now: UInt64) {
        hashesInFlight -= 1
        guard let slot = result.slot else { preconditionFailure("the session hashes only its piece buffers") }
        let piece = PieceIndex(UInt32(truncatingIfNeeded: result.token))
        let passed: Bool
        switch result.digest {
        case .sha1(let digest): passed = metainfo.pieceHash(piece) == digest
        case .merkleRoot(let root): passed = metainfo.v2PieceCheck(piece)?.expectedRoot == root
        default: passed = false
        }
        actions.removeAll(keepingCapacity: true)
        pieceChecked(piece, in: slot, passed: passed, now: now)
        perform(actions)
    }

    /// Writes a piece that passed, or drops one that failed and charges its senders (unless the fault
    /// is likely ours). Appends to `actions`.
    func pieceChecked(
        _ piece: PieceIndex, in slot: BufferSlot, passed: Bool, isLocalFault: Bool = false, now: UInt64
    ) {
        let instant = Instant(nanoseconds: now)
        if passed && (failure != nil || lifecycle.isEnding) {
            // Leaving (after an error such as a full disk, or after the last writes were awaited):
            // nothing more is written.
            assembling[piece] = nil
            pieceBuffers.release(slot)
            return
        }
        if passed {
            noteStart(.pieceVerified, now: now)
            let digests = pipeline.needsBlockDigests(toPass: piece) ? blockDigests(piece, in: slot) : nil
            let banned = pipeline.pieceHashPassed(piece, blockDigests: digests, at: instant, into: &actions)
            for peer in banned { ban(peer, reason: "sent corrupt data (block digests prove it)", now: now) }
            writing.insert(piece)
            store.writePiece(piece, from: slot, in: pieceBuffers)
            limitPiecesToFreeBuffers(now: now)
        } else {
            let digests = isLocalFault ? nil : blockDigests(piece, in: slot)
            assembling[piece] = nil
            pieceBuffers.release(slot)
            // Bytes still on their way for the failed piece must not land in its next buffer.
            if !blockWriters.isEmpty { blockWriters = blockWriters.filter { $0.key.piece != piece } }
            let report = pipeline.pieceHashFailed(
                piece, blockDigests: digests, at: instant, isLocalFault: isLocalFault, into: &actions)
            let senders = report.contributors.map(\.value)
            if isLocalFault {
                log("\(piece) has no hash to check it against; sent by peers \(senders)")
            } else if report.isLikelyLocalFault {
                log(
                    "\(piece) failed its hash check; sent by peers \(senders), and every peer that sent it "
                        + "failed it: likely a local fault, nobody is banned for it")
            } else {
                log("\(piece) failed its hash check; sent by peers \(senders)")
            }
            // Alone the sender of a piece before any of its data passed, or past the suspicion thresholds.
            for peer in report.peersToBan {
                ban(peer, reason: "sent pieces that failed their hash", now: now)
            }
            if !isLocalFault { dropWebSeeds(amongSenders: report.contributors, of: piece, now: now) }
        }
    }

    /// A checksum of each block of a piece in its buffer (the first 8 bytes of its SHA-1), so that once a
    /// failed piece passes, the peers whose blocks differed are proven liars. Computed only for a failed
    /// piece and for the pass that follows one: never on the data path.
    func blockDigests(_ piece: PieceIndex, in slot: BufferSlot) -> [UInt64] {
        let memory = UnsafeRawBufferPointer(pieceBuffers.bytes(of: slot))
        return (0..<geometry.blockCount(of: piece)).map { index in
            let block = geometry.block(index, of: piece)
            let start = Int(block.offset)
            let digest = SHA1.hash(
                UnsafeRawBufferPointer(rebasing: memory[start..<start + Int(block.length)]))
            return digest.bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// Pieces in progress may hold only the piece buffers that verified pieces waiting for the disk do
    /// not: beyond that, blocks would arrive with nowhere to go and be dropped. Appends to `actions`.
    func limitPiecesToFreeBuffers(now: UInt64) {
        pipeline.limitPiecesInProgress(
            to: pieceSlotCount - writing.count, at: Instant(nanoseconds: now), into: &actions)
    }

    func storageEvent(_ event: StorageEvent, now: UInt64) {
        switch event {
        case .pieceWritten(let piece, let slot):
            noteStart(.pieceWritten, now: now)
            writing.remove(piece)
            assembling[piece] = nil
            pieceBuffers.release(slot)
            verified.insert(piece)
            for case let link? in links where link.connection.isEstablished {
                link.connection.sendHave(piece)
            }
            actions.removeAll(keepingCapacity: true)
            limitPiecesToFreeBuffers(now: now)
            advanceStreamingWindow()
            perform(actions)
        case .flushed:
            flushed = true
            // Seeding from here on: what was verified is now on disk, so resume data may say so.
            if completionSaved { saveResumeData() }
        case .blockRead(let token, let block):
            uploadRead(token: token, block: block, now: now)
        case .pieceRead(let piece, _):
            cachedPieceRead(piece)
        case .failed(let request, let error):
            if case .readBlock(let token, let block) = request {
                uploadReadFailed(token: token, block: block)
                // Busy: the block is refused and asked again. Anything else (the file truncated, removed
                // or replaced, the device failing) means the data we vouched for is gone: the torrent
                // stops with the error (as Transmission's and libtorrent's do), rather than refusing the
                // peers' requests for it again and again; a check on its next start finds what is left.
                if error.reason != .overloaded { failure = .storage(error) }
                return
            }
            if case .readPiece(let piece, _) = request {
                pieceCache?.loadFailed(piece)
                if error.reason != .overloaded {
                    // Said for the first such piece only: a pipeline of requests into a truncated file
                    // fails one load per piece, and the block reads that follow stop the torrent anyway.
                    if uncachedPieces.isEmpty {
                        log("upload read failed: \(error); serving \(piece) block by block")
                    }
                    uncachedPieces.insert(piece)
                }
                serveUploads()
                return
            }
            if case .writePiece(let piece, let slot) = request {
                writing.remove(piece)
                assembling[piece] = nil
                pieceBuffers.release(slot)
            }
            forgetPiecesOfReplacedFile(error)
            failure = .storage(error)
        }
    }

    /// Does what the pipeline decided. Every caller passes `self.actions`. Padding a web seed's planning
    /// delivers at once completes blocks, whose refills and cancels land in `self.actions` after the
    /// copy given here: they are performed too, not cleared unseen by the caller's next `removeAll`
    /// (which left the seed holding blocks nobody asked it for, until its snub).
    func perform(_ actions: [RequestAction]) {
        performOnce(actions)
        var performed = actions.count
        while self.actions.count > performed {
            let added = Array(self.actions[performed...])
            performed = self.actions.count
            performOnce(added)
        }
    }

    private func performOnce(_ actions: [RequestAction]) {
        var unsent: [(PeerSlot, BlockRange)] = []
        for action in actions {
            switch action {
            case .request(let peer, let block):
                // A request the connection cannot send (its queue is full, the peer choked us meanwhile)
                // must not stay assigned, or the block waits for a snub timeout. Nor may one the download
                // limit holds back: it is made again once the limit allows. The limit is charged when a
                // block is requested, so what is in flight never exceeds it by more than one block.
                guard downloadLimiter.take(Int(block.length)) else {
                    downloadThrottled = true
                    unsent.append((peer, block))
                    continue
                }
                if let seed = webSeed(at: peer) {
                    seed.blocks.append(block)
                } else if let link = links[Int(peer.value)], !link.connection.request(block) {
                    unsent.append((peer, block))
                }
            case .cancel(let peer, let block):
                links[Int(peer.value)].map { _ = $0.connection.cancel(block) }
            case .interested(let peer):
                links[Int(peer.value)].map { _ = $0.connection.sendInterested() }
            case .notInterested(let peer):
                links[Int(peer.value)].map { _ = $0.connection.sendNotInterested() }
            }
        }
        var none: [RequestAction] = []
        for (peer, block) in unsent {
            pipeline.requestReturned(
                block, from: peer, at: Instant(nanoseconds: nowNanoseconds), refill: false, into: &none)
        }
        sendWebSeedRequests()
    }

    /// Tops up every peer's request queue (after the download limit held requests back).
    func refillAllRequests(now: UInt64) {
        actions.removeAll(keepingCapacity: true)
        for case let link? in links where pipeline.isConnected(link.slot) {
            pipeline.fillRequests(for: link.slot, at: Instant(nanoseconds: now), into: &actions)
        }
        perform(actions)
    }
}
