import PeerWire
import Testing
import TorrentModel

/// Two connections wired back to back: a leecher that dials a seeder, with the bytes between them cut
/// into seeded random chunks. A minimal swarm layer on each side reacts to the events.
@Suite struct EndToEndTests {
    struct Leecher {
        var connection: PeerConnection
        var received: [UInt8]
        var blocksLeft: [BlockRange]
        var blocksReceived: [BlockRange: Int] = [:]
        var events: [RecordedPeerEvent] = []
        var peerHasEverything = false
        var unchoked = false
        let pipelineDepth: Int

        /// Requests blocks while the pipeline has room.
        mutating func fillPipeline() {
            while unchoked, connection.pendingRequestCount < pipelineDepth, let block = blocksLeft.first {
                #expect(connection.request(block) == true)
                blocksLeft.removeFirst()
            }
        }
    }

    struct Seeder {
        var connection: PeerConnection
        var events: [RecordedPeerEvent] = []
    }

    /// Moves everything `outbound` holds through `deliver` in random chunks.
    static func transfer(
        _ outbound: inout [UInt8], using random: inout SeededRandom,
        deliver: ([UInt8]) throws(DisconnectReason) -> Void
    ) throws(DisconnectReason) {
        let bytes = outbound
        outbound.removeAll(keepingCapacity: true)
        var start = 0
        for size in randomChunkSizes(total: bytes.count, using: &random) where start < bytes.count {
            let end = min(bytes.count, start + size)
            try deliver(Array(bytes[start..<end]))
            start = end
        }
    }

    @Test(arguments: [(true, UInt64(1)), (false, UInt64(2)), (true, UInt64(3)), (false, UInt64(4))])
    func leecherDownloadsTheWholeTorrent(fast: Bool, seed: UInt64) throws {
        let geometry = PieceGeometry(totalLength: 7 * 65536 + 12345, pieceLength: 65536)
        let content = testContent(geometry)
        var options = PeerConnectionOptions()
        options.reserved = fast ? [.fastExtension, .extensionProtocol] : [.extensionProtocol]
        options.maximumIncomingRequests = 8

        let allBlocks = (0..<geometry.pieceCount).flatMap { piece in
            (0..<geometry.blockCount(of: PieceIndex(piece))).map { geometry.block($0, of: PieceIndex(piece)) }
        }
        var leecher = Leecher(
            connection: PeerConnection(
                geometry: geometry, infoHash: localInfoHash, localPeerID: id20(0x11),
                localPieces: PieceSet(pieceCount: geometry.pieceCount), initiatedLocally: true,
                options: options),
            received: [UInt8](repeating: 0, count: content.count), blocksLeft: allBlocks, pipelineDepth: 6)
        var seeder = Seeder(
            connection: PeerConnection(
                geometry: geometry, infoHash: localInfoHash, localPeerID: id20(0x22),
                localPieces: fullBitfield(geometry), initiatedLocally: false, options: options))

        var random = SeededRandom(seed: seed)
        var now = seconds(1)
        leecher.connection.start(now: now)
        seeder.connection.start(now: now)
        var rounds = 0
        while leecher.blocksReceived.count < allBlocks.count || !leecher.connection.outbound.isEmpty {
            rounds += 1
            try #require(rounds < 1000, "the transfer stalled")
            now = now.advanced(byNanoseconds: 1_000_000)

            // Leecher → seeder.
            try Self.transfer(&leecher.connection.outbound, using: &random) {
                (chunk) throws(DisconnectReason) in
                try seeder.connection.receive(chunk.span, now: now) {
                    seeder.events.append(RecordedPeerEvent($0))
                }
            }
            for event in seeder.events {
                switch event {
                case .peerInterested:
                    #expect(seeder.connection.unchoke() == true)
                case .requestReceived(let block):
                    let data = payload(of: block, in: content, geometry: geometry)
                    #expect(seeder.connection.sendBlock(block, payload: data.span) == true)
                default: break
                }
            }
            seeder.events.removeAll()

            // Seeder → leecher: block bytes are copied straight from the event into place.
            try Self.transfer(&seeder.connection.outbound, using: &random) {
                (chunk) throws(DisconnectReason) in
                try leecher.connection.receive(chunk.span, now: now) { event in
                    if case .blockData(let block, let offset, let bytes) = event {
                        let start = Int(geometry.offset(of: block.piece)) + Int(block.offset) + offset
                        for i in 0..<bytes.count { leecher.received[start + i] = bytes[i] }
                        leecher.blocksReceived[block, default: 0] += bytes.count
                    } else {
                        leecher.events.append(RecordedPeerEvent(event))
                    }
                }
            }
            for event in leecher.events {
                switch event {
                case .handshakeCompleted(let peerID, let negotiated):
                    #expect(peerID == id20(0x22))
                    #expect(negotiated.contains(.fastExtension) == fast)
                    let extensionHandshake = Array("d1:md6:ut_pexi1eee".utf8)
                    #expect(leecher.connection.sendExtended(id: 0, payload: extensionHandshake.span) == true)
                case .peerHasAll, .peerBitfield:
                    leecher.peerHasEverything = leecher.connection.peerPieces.isComplete
                    #expect(leecher.connection.sendInterested() == true)
                case .peerUnchokedUs:
                    leecher.unchoked = true
                default: break
                }
            }
            leecher.events.removeAll()
            leecher.fillPipeline()
            // Announce each piece once all its blocks are in and its bytes are right.
            for piece in 0..<geometry.pieceCount
            where !leecher.connection.localPieces.contains(PieceIndex(piece)) {
                let index = PieceIndex(piece)
                let blocks = (0..<geometry.blockCount(of: index)).map { geometry.block($0, of: index) }
                guard blocks.allSatisfy({ leecher.blocksReceived[$0] == Int($0.length) }) else { continue }
                let start = Int(geometry.offset(of: index))
                let range = start..<start + geometry.length(of: index)
                #expect(leecher.received[range] == content[range], "\(index)")
                #expect(leecher.connection.sendHave(index) == true)
            }
        }

        #expect(leecher.peerHasEverything)
        #expect(leecher.received == content)
        #expect(leecher.blocksReceived.count == allBlocks.count)
        #expect(leecher.connection.downloadedPayloadBytes == UInt64(content.count))
        #expect(seeder.connection.uploadedPayloadBytes == UInt64(content.count))
        #expect(seeder.connection.peerPieces.isComplete)  // every have arrived
        #expect(seeder.connection.peerInterested && !seeder.connection.amChoking)
        #expect(leecher.connection.amInterested && !leecher.connection.peerChoking)
        #expect(
            leecher.connection.pendingRequestCount == 0 && seeder.connection.queuedIncomingRequestCount == 0)
        #expect(leecher.connection.isEstablished && seeder.connection.isEstablished)
    }

    @Test func keepAlivesKeepAnIdleConnectionAliveAcrossTimeouts() throws {
        var a = try establishedPair()
        // Both sides tick every 10 s for 20 minutes without any traffic of their own.
        var random = SeededRandom(seed: 7)
        for tick in 1...120 {
            let now = seconds(UInt64(tick) * 10)
            try a.left.timerTick(now: now)
            try a.right.timerTick(now: now)
            try EndToEndTests.transfer(&a.left.outbound, using: &random) { (chunk) throws(DisconnectReason) in
                _ = try a.right.feed(chunk, at: now)
            }
            try EndToEndTests.transfer(&a.right.outbound, using: &random) {
                (chunk) throws(DisconnectReason) in
                _ = try a.left.feed(chunk, at: now)
            }
        }
        #expect(a.left.isEstablished && a.right.isEstablished)
        // Without the keep-alives passed on, the same silence ends the connection.
        var b = try establishedPair()
        let reason = disconnectReason {
            for tick in 1...120 { try b.left.timerTick(now: seconds(UInt64(tick) * 10)) }
        }
        #expect(reason == .peerSilent(silentNanoseconds: 180_000_000_000, limitNanoseconds: 180_000_000_000))
    }

    /// Two connections at time 0, past the handshake and availability messages.
    func establishedPair() throws -> (left: PeerConnection, right: PeerConnection) {
        var left = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: id20(0x11),
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true)
        var right = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: id20(0x22),
            localPieces: fullBitfield(), initiatedLocally: false)
        left.start(now: seconds(0))
        right.start(now: seconds(0))
        #expect(try right.feed(left.takeOutbound(), at: seconds(0)).count == 1)
        let events = try left.feed(right.takeOutbound(), at: seconds(0))
        #expect(
            events == [
                .handshakeCompleted(peerID: id20(0x22), negotiated: [.fastExtension, .extensionProtocol]),
                .peerHasAll,
            ])
        #expect(try right.feed(left.takeOutbound(), at: seconds(0)) == [.peerHasNone])
        return (left, right)
    }
}
