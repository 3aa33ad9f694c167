import Hashing
import PeerWire
import Testing
import TorrentModel

let block0 = testGeometry.block(0, of: PieceIndex(0))
let block1 = testGeometry.block(1, of: PieceIndex(0))
let lastBlock = testGeometry.block(0, of: PieceIndex(5))

@Suite struct HandshakeRulesTests {
    @Test func initiatorSendsItsHandshakeAtStart() {
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true)
        #expect(connection.outbound.isEmpty)
        connection.start(now: seconds(0))
        #expect(connection.phase == .awaitingHandshake)
        #expect(
            connection.takeOutbound()
                == handshakeBytes(reserved: [.fastExtension, .extensionProtocol], peerID: ourPeerID))
    }

    @Test func acceptorAnswersOnlyAfterTheRightInfohash() throws {
        var pieces = PieceSet(pieceCount: 6)
        pieces.insert(PieceIndex(1))
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID, localPieces: pieces,
            initiatedLocally: false)
        connection.start(now: seconds(0))
        #expect(connection.outbound.isEmpty)
        let handshake = handshakeBytes(reserved: [.fastExtension, .dht])
        // Half a handshake: nothing happens yet.
        #expect(try connection.feed(Array(handshake[0..<30])).isEmpty)
        let events = try connection.feed(Array(handshake[30...]))
        #expect(events == [.handshakeCompleted(peerID: remotePeerID, negotiated: [.fastExtension])])
        #expect(
            connection.isEstablished && connection.fastExtensionEnabled
                && !connection.extensionProtocolEnabled)
        // Our handshake, then our bitfield (piece 1 = 0x40) as the first message.
        #expect(
            connection.takeOutbound()
                == handshakeBytes(reserved: [.fastExtension, .extensionProtocol], peerID: ourPeerID)
                + bitfieldMessage([0x40]))
    }

    @Test func wrongInfohashEndsTheConnectionWithoutAnAnswer() {
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: false)
        connection.start(now: seconds(0))
        let reason = disconnectReason {
            _ = try connection.feed(handshakeBytes(reserved: [], infoHash: id20(0xbb)))
        }
        #expect(reason == .infoHashMismatch(expected: localInfoHash, received: id20(0xbb)))
        #expect(connection.outbound.isEmpty)
        #expect(connection.phase == .closed && connection.closeReason == reason)
        // A closed connection rethrows and ignores commands.
        #expect(disconnectReason { _ = try connection.feed(wire(.interested)) } == reason)
        #expect(connection.sendInterested() == false)
    }

    /// BEP 52: a hybrid torrent is one swarm under two ids. A peer that dials us with the truncated v2
    /// infohash is answered with it; a peer we dialled must echo the id we sent.
    @Test func aHybridTorrentAnswersAPeerThatDialsWithItsOtherID() throws {
        let v2: InfoHash = id20(0xcc)
        var incoming = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, alternativeInfoHash: v2, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: false)
        incoming.start(now: seconds(0))
        let events = try incoming.feed(handshakeBytes(reserved: [], infoHash: v2))
        #expect(events == [.handshakeCompleted(peerID: remotePeerID, negotiated: [])])
        #expect(incoming.infoHash == v2)
        #expect(
            incoming.takeOutbound().starts(
                with: handshakeBytes(
                    reserved: [.fastExtension, .extensionProtocol], infoHash: v2, peerID: ourPeerID)))

        var outgoing = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, alternativeInfoHash: v2, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true)
        outgoing.start(now: seconds(0))
        let reason = disconnectReason { _ = try outgoing.feed(handshakeBytes(reserved: [], infoHash: v2)) }
        #expect(reason == .infoHashMismatch(expected: localInfoHash, received: v2))
    }

    @Test func ourOwnPeerIDAndAnUnexpectedPeerIDAreRefused() {
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true)
        connection.start(now: seconds(0))
        #expect(
            disconnectReason { _ = try connection.feed(handshakeBytes(reserved: [], peerID: ourPeerID)) }
                == .connectedToSelf)

        var options = PeerConnectionOptions()
        options.expectedPeerID = id20(0x33)
        var dialled = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true, options: options)
        dialled.start(now: seconds(0))
        #expect(
            disconnectReason { _ = try dialled.feed(handshakeBytes(reserved: [])) }
                == .peerIDMismatch(expected: id20(0x33), received: remotePeerID))
    }

    @Test func availabilityMessageFollowsWhatWasNegotiated() throws {
        // With the fast extension: have-none, have-all, or a bitfield for a partial set.
        var partial = PeerBitfieldFixtures.partial
        let empty = try establishedOutbound(fast: true, localPieces: PieceSet(pieceCount: 6))
        #expect(empty == wire(.haveNone))
        #expect(try establishedOutbound(fast: true, localPieces: fullBitfield()) == wire(.haveAll))
        #expect(try establishedOutbound(fast: true, localPieces: partial) == bitfieldMessage([0x84]))
        // Without it: nothing for an empty set (BEP 3 allows skipping), a bitfield otherwise.
        #expect(try establishedOutbound(fast: false, localPieces: PieceSet(pieceCount: 6)).isEmpty)
        #expect(try establishedOutbound(fast: false, localPieces: fullBitfield()) == bitfieldMessage([0xfc]))
        // A have before the handshake goes into the bitfield instead of on the wire.
        partial.insert(PieceIndex(1))
        #expect(try establishedOutbound(fast: false, localPieces: partial) == bitfieldMessage([0xc4]))
    }

    /// The bytes a connection sends after the handshake when it has `localPieces`.
    func establishedOutbound(fast: Bool, localPieces: PieceSet) throws -> [UInt8] {
        var options = PeerConnectionOptions()
        options.reserved = fast ? [.fastExtension] : []
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true, options: options)
        connection.start(now: seconds(0))
        for piece in 0..<6 where localPieces.contains(PieceIndex(piece)) {
            #expect(connection.sendHave(PieceIndex(piece)) == false)  // not established: recorded, not sent
        }
        _ = connection.takeOutbound()
        _ = try connection.feed(handshakeBytes(reserved: [.fastExtension]))
        return connection.takeOutbound()
    }

    @Test func handshakeTimesOut() throws {
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true)
        connection.start(now: seconds(100))
        try connection.timerTick(now: seconds(119))
        #expect(
            disconnectReason { try connection.timerTick(now: seconds(120)) }
                == .handshakeTimedOut(waitedNanoseconds: 20_000_000_000))
    }
}

enum PeerBitfieldFixtures {
    /// Pieces 0 and 5.
    static var partial: PieceSet {
        var bits = PieceSet(pieceCount: 6)
        bits.insert(PieceIndex(0))
        bits.insert(PieceIndex(5))
        return bits
    }
}

@Suite struct AvailabilityRulesTests {
    @Test func bitfieldIsRecordedAndReported() throws {
        var connection = try establishedConnection(fast: false)
        let events = try connection.feed(
            bitfieldMessage([0x84]) + wire(.have(PieceIndex(1)), .have(PieceIndex(1))))
        #expect(events == [.peerBitfield([0x84]), .peerHas(PieceIndex(1))])  // a repeated have is not news
        #expect(connection.peerPieces.count == 3 && connection.peerPieces.contains(PieceIndex(5)))
    }

    @Test func interestedMayPrecedeTheBitfield() throws {
        // aria2 sends INTERESTED before its bitfield: that is tolerated, as libtorrent does.
        var late = try establishedConnection(fast: false)
        _ = try late.feed(wire(.interested))
        #expect(try late.feed(bitfieldMessage([0x80])) == [.peerBitfield([0x80])])
    }

    /// Regression: aria2 1.36 downloading from us was dropped with "bitfield is not the first message":
    /// it announces pieces it completed since its last haves with a bitfield (or have-all) mid-connection.
    @Test func aLateBitfieldOrHaveAllIsReadAsHaves() throws {
        var afterHave = try establishedConnection(fast: false)
        _ = try afterHave.feed(wire(.have(PieceIndex(2))))
        #expect(
            try afterHave.feed(bitfieldMessage([0xa0]))
                == [.peerHas(PieceIndex(0))])  // 0 and 2; 2 is old news
        #expect(afterHave.peerPieces.count == 2)

        var twice = try establishedConnection(fast: true, peerAvailability: bitfieldMessage([0x80]))
        // A later bitfield that leaves out an announced piece takes nothing back.
        #expect(try twice.feed(bitfieldMessage([0x04])) == [.peerHas(PieceIndex(5))])
        #expect(twice.peerPieces.contains(PieceIndex(0)) && twice.peerPieces.count == 2)
        #expect(
            try twice.feed(wire(.haveAll))
                == [1, 2, 3, 4].map { RecordedPeerEvent.peerHas(PieceIndex($0)) })
        #expect(twice.peerPieces.isComplete)
    }

    @Test func aLateHaveNoneIsRefused() throws {
        var connection = try establishedConnection(fast: true, peerAvailability: bitfieldMessage([0x80]))
        #expect(
            disconnectReason { _ = try connection.feed(wire(.haveNone)) }
                == .misplacedAvailability(id: .haveNone))
    }

    @Test func extendedHandshakeKeepAliveAndPortMayPrecedeTheBitfield() throws {
        var connection = try establishedConnection(fast: true)
        var input = wire(.keepAlive)
        WireEncoder.appendExtended(id: 0, payload: Array("de".utf8).span, into: &input)
        input += wire(.port(6881)) + bitfieldMessage([0x04])
        let events = try connection.feed(input)
        #expect(events == [.extended(id: 0, Array("de".utf8)), .dhtPort(6881), .peerBitfield([0x04])])
    }

    @Test func haveAllAndHaveNoneNeedTheFastExtension() throws {
        var fast = try establishedConnection(fast: true)
        #expect(try fast.feed(wire(.haveAll)) == [.peerHasAll])
        #expect(fast.peerPieces.isComplete)
        var none = try establishedConnection(fast: true)
        #expect(try none.feed(wire(.haveNone)) == [.peerHasNone])
        #expect(none.peerPieces.isEmpty)

        // BEP 6: "When the fast extension is disabled, if a peer receives Have All or Have None then the
        // peer MUST close the connection", and likewise for suggest, reject and allowed fast.
        for message in [
            PeerMessage.haveAll, .haveNone, .suggestPiece(PieceIndex(1)), .allowedFast(PieceIndex(1)),
            .rejectRequest(block0),
        ] {
            var slow = try establishedConnection(fast: false)
            #expect(
                disconnectReason { _ = try slow.feed(wire(message)) }
                    == .fastExtensionNotNegotiated(id: message.id ?? .haveAll))
        }
    }

    @Test func extendedMessagesNeedTheExtensionProtocol() throws {
        var options = PeerConnectionOptions()
        options.reserved = []
        var connection = PeerConnection(
            geometry: testGeometry, infoHash: localInfoHash, localPeerID: ourPeerID,
            localPieces: PieceSet(pieceCount: 6), initiatedLocally: true, options: options)
        connection.start(now: seconds(0))
        _ = try connection.feed(handshakeBytes(reserved: [.extensionProtocol]))
        #expect(connection.sendExtended(id: 0, payload: [UInt8]().span) == false)
        var input: [UInt8] = []
        WireEncoder.appendExtended(id: 1, payload: [1, 2].span, into: &input)
        #expect(disconnectReason { _ = try connection.feed(input) } == .extensionProtocolNotNegotiated)
    }

    /// Unknown ids, and BEP 52 `hashes` we never asked for (id 22), are skipped.
    @Test func unknownMessagesAreIgnored() throws {
        var connection = try establishedConnection(fast: false)
        #expect(try connection.feed(bytes("00000003 16 0000") + wire(.unchoke)) == [.peerUnchokedUs])
    }

    /// An unchoke while unchoked changes nothing and is not reported: each report costs the engine a
    /// pick, and a peer could send them by the thousand.
    @Test func aRepeatedUnchokeIsReportedOnce() throws {
        var connection = try establishedConnection(fast: false)
        #expect(try connection.feed(wire(.unchoke) + wire(.unchoke) + wire(.unchoke)) == [.peerUnchokedUs])
        #expect(try connection.feed(wire(.choke) + wire(.unchoke)) == [.peerChokedUs, .peerUnchokedUs])
    }

    /// BEP 52: a hash request goes to the caller to answer.
    @Test func aHashRequestIsPassedOn() throws {
        var connection = try establishedConnection(fast: false)
        let request = HashRequest(
            piecesRoot: SHA256Digest(bytes: [UInt8](repeating: 7, count: 32))!, baseLayer: 0, index: 0,
            length: 2,
            proofLayers: 0)
        #expect(try connection.feed(request.encodedRequest()) == [.hashRequested(request)])
    }
}

@Suite struct OutgoingRequestTests {
    /// Established, the peer has everything and has unchoked us.
    func unchokedConnection(
        fast: Bool, options: PeerConnectionOptions = PeerConnectionOptions()
    ) throws
        -> PeerConnection
    {
        var connection = try establishedConnection(
            fast: fast, peerAvailability: bitfieldMessage([0xfc]), options: options)
        _ = try connection.feed(wire(.unchoke))
        return connection
    }

    @Test func requestedBlockIsDeliveredAndResolvesTheRequest() throws {
        var connection = try unchokedConnection(fast: true)
        #expect(connection.sendInterested() == true)
        #expect(connection.sendInterested() == false)  // no change, nothing sent
        #expect(connection.request(block0) == true)
        #expect(connection.takeOutbound() == wire(.interested, .request(block0)))
        #expect(connection.pendingRequestCount == 1 && connection.isPending(block0))

        let data = payload(of: block0, in: testContent())
        let message = pieceMessage(block0, data)
        var events = try connection.feed(Array(message[0..<1000]))
        events += try connection.feed(Array(message[1000...]))
        #expect(
            events == [
                .block(block0, offsetInBlock: 0, Array(data[0..<(1000 - 13)])),
                .block(block0, offsetInBlock: 1000 - 13, Array(data[(1000 - 13)...])),
            ])
        #expect(connection.pendingRequestCount == 0 && connection.downloadedPayloadBytes == 16384)
        // The same block again was not requested again: BEP 3/6 say close.
        #expect(disconnectReason { _ = try connection.feed(message) } == .unrequestedBlock(block0))
    }

    @Test func neverRequestedBlockEndsTheConnection() throws {
        var connection = try unchokedConnection(fast: false)
        #expect(connection.request(block0) == true)
        // Same piece and offset, different length: still not what we asked for.
        let wrongLength = BlockRange(piece: PieceIndex(0), offset: 0, length: 100)
        #expect(
            disconnectReason {
                _ = try connection.feed(pieceMessage(wrongLength, [UInt8](repeating: 0, count: 100)))
            }
                == .unrequestedBlock(wrongLength))
    }

    @Test func requestsAreRefusedWhenTheyCannotBeSent() throws {
        var choked = try establishedConnection(fast: true, peerAvailability: bitfieldMessage([0x80]))
        #expect(choked.request(block0) == false)  // choked, not allowed fast
        _ = try choked.feed(wire(.allowedFast(PieceIndex(0)), .allowedFast(PieceIndex(0))))
        #expect(choked.isAllowedFast(PieceIndex(0)))
        #expect(choked.request(block0) == true)  // BEP 6: allowed fast while choked
        #expect(choked.request(block0) == false)  // already outstanding
        #expect(choked.request(lastBlock) == false)  // the peer lacks piece 5

        var options = PeerConnectionOptions()
        options.maximumOutgoingRequests = 2
        var bounded = try unchokedConnection(fast: true, options: options)
        #expect(bounded.request(block0) && bounded.request(block1))
        #expect(bounded.request(lastBlock) == false)
        // A cancelled request still counts until it is answered: the peer owes a piece or reject.
        #expect(bounded.cancel(block0) == true)
        #expect(bounded.request(lastBlock) == false)
        _ = try bounded.feed(wire(.rejectRequest(block0)))
        #expect(bounded.request(lastBlock) == true)
    }

    @Test func allowedFastGrantsAreBounded() throws {
        var options = PeerConnectionOptions()
        options.maximumAllowedFastPieces = 2
        var connection = try establishedConnection(fast: true, options: options)
        let events = try connection.feed(
            wire(.allowedFast(PieceIndex(0)), .allowedFast(PieceIndex(1)), .allowedFast(PieceIndex(2))))
        #expect(events == [.allowedFast(PieceIndex(0)), .allowedFast(PieceIndex(1))])
        #expect(!connection.isAllowedFast(PieceIndex(2)))
    }

    @Test func fastRejectResolvesAPendingRequestAndAnUnknownOneEndsTheConnection() throws {
        var connection = try unchokedConnection(fast: true)
        #expect(connection.request(block0) == true)
        #expect(try connection.feed(wire(.rejectRequest(block0))) == [.requestRejected(block0)])
        #expect(connection.pendingRequestCount == 0)
        #expect(
            disconnectReason { _ = try connection.feed(wire(.rejectRequest(block0))) }
                == .unrequestedReject(block0))
    }

    @Test func fastChokeKeepsRequestsPendingUntilRejected() throws {
        var connection = try unchokedConnection(fast: true)
        #expect(connection.request(block0) && connection.request(block1))
        #expect(try connection.feed(wire(.choke)) == [.peerChokedUs])
        #expect(connection.pendingRequestCount == 2)
        // BEP 6: the peer answers each request with exactly one piece or reject.
        let data = payload(of: block1, in: testContent())
        let events = try connection.feed(wire(.rejectRequest(block0)) + pieceMessage(block1, data))
        #expect(events == [.requestRejected(block0), .block(block1, offsetInBlock: 0, data)])
    }

    @Test func chokeWithoutFastExtensionRejectsEverythingPending() throws {
        var connection = try unchokedConnection(fast: false)
        #expect(connection.request(block0) && connection.request(block1))
        let events = try connection.feed(wire(.choke), at: seconds(10))
        #expect(events.first == .peerChokedUs)
        #expect(events.contains(.requestRejected(block0)) && events.contains(.requestRejected(block1)))
        #expect(events.count == 3 && connection.pendingRequestCount == 0)
        // A block already on the wire when the peer choked is tolerated, and dropped: it was reported
        // rejected, so reporting it now would resolve the request twice.
        let data = payload(of: block0, in: testContent())
        #expect(try connection.feed(pieceMessage(block0, data), at: seconds(11)).isEmpty)
        #expect(connection.downloadedPayloadBytes == 0)
        // After the grace period the other one is no longer tolerated.
        _ = try connection.feed(wire(.keepAlive), at: seconds(45))
        try connection.timerTick(now: seconds(45))
        #expect(
            disconnectReason {
                _ = try connection.feed(pieceMessage(block1, payload(of: block1, in: testContent())))
            }
                == .unrequestedBlock(block1))
    }

    @Test func cancelledBlockIsDiscardedWithinTheGraceAndRefusedAfter() throws {
        var connection = try unchokedConnection(fast: false)
        #expect(connection.request(block0) && connection.request(block1))
        _ = try connection.feed(wire(.keepAlive), at: seconds(5))
        #expect(connection.cancel(block0) && connection.cancel(block1))
        #expect(connection.cancel(block1) == false)  // not pending any more
        #expect(
            connection.takeOutbound()
                == wire(.request(block0), .request(block1), .cancel(block0), .cancel(block1)))
        #expect(!connection.isPending(block0) && connection.pendingRequestCount == 0)

        let data0 = payload(of: block0, in: testContent())
        #expect(try connection.feed(pieceMessage(block0, data0), at: seconds(20)).isEmpty)
        try connection.timerTick(now: seconds(34))  // 29 s after the cancel: still tolerated
        try connection.timerTick(now: seconds(35))  // 30 s: expired
        let data1 = payload(of: block1, in: testContent())
        #expect(
            disconnectReason { _ = try connection.feed(pieceMessage(block1, data1), at: seconds(35)) }
                == .unrequestedBlock(block1))
    }

    @Test func fastCancelledRequestIsAwaitedHoweverLate() throws {
        // BEP 6: the peer answers every request, cancelled or not, so a late answer is no violation.
        var connection = try unchokedConnection(fast: true)
        #expect(connection.request(block0) == true)
        #expect(connection.cancel(block0) == true)
        for second in stride(from: 10, through: 170, by: 10) {
            _ = try connection.feed(wire(.keepAlive), at: seconds(UInt64(second)))
            try connection.timerTick(now: seconds(UInt64(second)))
        }
        let data = payload(of: block0, in: testContent())
        #expect(try connection.feed(pieceMessage(block0, data), at: seconds(175)).isEmpty)
        #expect(connection.downloadedPayloadBytes == 0)
    }

    @Test func fastCancelledRequestAnsweredByRejectIsSilent() throws {
        var connection = try unchokedConnection(fast: true)
        #expect(connection.request(block0) == true)
        #expect(connection.cancel(block0) == true)
        #expect(try connection.feed(wire(.rejectRequest(block0))).isEmpty)
    }
}

@Suite struct IncomingRequestTests {
    /// Established with the fast extension (or not), we have everything, the peer is interested.
    func seedingConnection(
        fast: Bool, options: PeerConnectionOptions = PeerConnectionOptions()
    ) throws
        -> PeerConnection
    {
        var connection = try establishedConnection(
            fast: fast, localPieces: fullBitfield(), peerAvailability: fast ? wire(.haveNone) : nil,
            options: options)
        #expect(try connection.feed(wire(.interested)) == [.peerInterested])
        return connection
    }

    @Test func requestWhileChokedIsRejectedWithFastExtensionAndIgnoredWithout() throws {
        var fast = try seedingConnection(fast: true)
        #expect(try fast.feed(wire(.request(block0))).isEmpty)
        #expect(fast.takeOutbound() == wire(.rejectRequest(block0)))

        var slow = try seedingConnection(fast: false)
        #expect(try slow.feed(wire(.request(block0))).isEmpty)
        #expect(slow.takeOutbound().isEmpty)
    }

    @Test func allowedFastPieceMayBeRequestedWhileChoked() throws {
        var connection = try seedingConnection(fast: true)
        #expect(connection.sendAllowedFast(PieceIndex(0)) == true)
        #expect(connection.sendAllowedFast(PieceIndex(0)) == false)
        #expect(
            try connection.feed(wire(.request(block0), .request(lastBlock))) == [.requestReceived(block0)])
        #expect(connection.takeOutbound() == wire(.allowedFast(PieceIndex(0)), .rejectRequest(lastBlock)))
    }

    @Test func servedRequestSendsThePieceOnce() throws {
        var connection = try seedingConnection(fast: true)
        #expect(connection.unchoke() == true)
        #expect(try connection.feed(wire(.request(block0), .request(block0))) == [.requestReceived(block0)])
        #expect(connection.queuedIncomingRequestCount == 1)
        let data = payload(of: block0, in: testContent())
        _ = connection.takeOutbound()
        #expect(connection.sendBlock(block0, payload: data.span) == true)
        #expect(connection.sendBlock(block0, payload: data.span) == false)
        #expect(connection.takeOutbound() == pieceMessage(block0, data))
        #expect(connection.uploadedPayloadBytes == 16384)
    }

    @Test func blockHeaderLetsThePayloadBeSentFromElsewhere() throws {
        var connection = try seedingConnection(fast: true)
        connection.unchoke()
        _ = try connection.feed(wire(.request(block0), .request(block1)))
        _ = connection.takeOutbound()
        connection.sendInterested()
        let position = connection.sendBlockHeader(block0)
        #expect(position == 5 + 13)
        #expect(connection.sendBlockHeader(block0) == nil)  // served already
        let data1 = payload(of: block1, in: testContent())
        #expect(connection.sendBlock(block1, payload: data1.span) == true)
        // Splicing the payload in at `position` gives the same stream as copying it.
        let outbound = connection.takeOutbound()
        let data0 = payload(of: block0, in: testContent())
        let spliced = Array(outbound[..<18]) + data0 + Array(outbound[18...])
        #expect(spliced == wire(.interested) + pieceMessage(block0, data0) + pieceMessage(block1, data1))
        #expect(connection.uploadedPayloadBytes == 2 * 16384)
    }

    @Test func requestForAPieceWeLackIsRefused() throws {
        var connection = try establishedConnection(fast: true, localPieces: PeerBitfieldFixtures.partial)
        #expect(connection.unchoke() == true)
        _ = connection.takeOutbound()
        let missing = testGeometry.block(0, of: PieceIndex(3))
        #expect(try connection.feed(wire(.request(missing))).isEmpty)
        #expect(connection.takeOutbound() == wire(.rejectRequest(missing)))
    }

    @Test func peerCancelIsReportedAndAnsweredWithReject() throws {
        var connection = try seedingConnection(fast: true)
        connection.unchoke()
        _ = try connection.feed(wire(.request(block0)))
        _ = connection.takeOutbound()
        #expect(try connection.feed(wire(.cancel(block0), .cancel(block1))) == [.cancelReceived(block0)])
        // BEP 6: a cancelled request still gets exactly one answer.
        #expect(connection.takeOutbound() == wire(.rejectRequest(block0)))
        #expect(connection.sendBlock(block0, payload: payload(of: block0, in: testContent()).span) == false)
    }

    @Test func ourChokeRejectsQueuedRequestsExceptAllowedFast() throws {
        var connection = try seedingConnection(fast: true)
        connection.unchoke()
        #expect(connection.sendAllowedFast(PieceIndex(5)) == true)
        _ = try connection.feed(wire(.request(block0), .request(block1), .request(lastBlock)))
        _ = connection.takeOutbound()
        #expect(connection.choke() == true)
        let sent = connection.takeOutbound()
        // BEP 6: choke first, then the rejects (in any order), none for the allowed-fast piece.
        #expect(Array(sent[0..<5]) == wire(.choke))
        let rejects = Set([wire(.rejectRequest(block0)), wire(.rejectRequest(block1))])
        #expect(Set([Array(sent[5..<22]), Array(sent[22...])]) == rejects)
        #expect(connection.queuedIncomingRequestCount == 1)
        #expect(
            connection.sendBlock(lastBlock, payload: payload(of: lastBlock, in: testContent()).span) == true)
    }

    @Test func requestFloodBeyondOurQueueIsRejectedWithFastAndEndsTheConnectionWithout() throws {
        var options = PeerConnectionOptions()
        options.maximumIncomingRequests = 2
        options.maximumConsecutiveRefusedRequests = 3
        var fast = try seedingConnection(fast: true, options: options)
        fast.unchoke()
        _ = fast.takeOutbound()
        let blocks = (0..<6).map { BlockRange(piece: PieceIndex(0), offset: UInt32($0 * 1000), length: 1000) }
        let events = try fast.feed(wire(.request(blocks[0]), .request(blocks[1]), .request(blocks[2])))
        #expect(events == [.requestReceived(blocks[0]), .requestReceived(blocks[1])])
        #expect(fast.takeOutbound() == wire(.rejectRequest(blocks[2])))
        _ = try fast.feed(wire(.request(blocks[3]), .request(blocks[4])))
        #expect(
            disconnectReason { _ = try fast.feed(wire(.request(blocks[5]))) }
                == .requestFlood(count: 4, limit: 3))

        var slow = try seedingConnection(fast: false, options: options)
        slow.unchoke()
        _ = try slow.feed(wire(.request(blocks[0]), .request(blocks[1])))
        #expect(
            disconnectReason { _ = try slow.feed(wire(.request(blocks[2]))) }
                == .requestFlood(count: 3, limit: 2))
    }

    @Test func peerThatDoesNotReadWhatWeQueueIsCutOff() throws {
        var options = PeerConnectionOptions()
        options.maximumQueuedOutboundBytes = 100
        var connection = try seedingConnection(fast: true, options: options)
        connection.unchoke()
        _ = connection.takeOutbound()
        // Each request and cancel makes us queue a 17-byte reject; nobody takes them.
        let pair = wire(.request(block0), .cancel(block0))
        for _ in 0..<5 { _ = try connection.feed(pair) }
        #expect(connection.outbound.count == 85)
        #expect(
            disconnectReason { _ = try connection.feed(pair) }
                == .peerNotReading(queuedBytes: 102, limit: 100))
    }

    @Test func peerThatKeepsRequestingWhileChokedIsCutOff() throws {
        var options = PeerConnectionOptions()
        options.maximumConsecutiveRefusedRequests = 10
        var connection = try seedingConnection(fast: false, options: options)
        let request = wire(.request(block0))
        for _ in 0..<10 { _ = try connection.feed(request) }
        #expect(disconnectReason { _ = try connection.feed(request) } == .requestFlood(count: 11, limit: 10))
    }
}

@Suite struct TimerTests {
    @Test func keepAliveAfterIdleIntervalOnly() throws {
        var connection = try establishedConnection(fast: true)  // last sent at 0 s
        try connection.timerTick(now: seconds(59))
        #expect(connection.outbound.isEmpty)
        try connection.timerTick(now: seconds(60))
        #expect(connection.takeOutbound() == wire(.keepAlive))
        // Sending anything resets the interval.
        _ = try connection.feed(wire(.keepAlive), at: seconds(100))
        connection.sendInterested()
        _ = connection.takeOutbound()
        try connection.timerTick(now: seconds(159))
        #expect(connection.outbound.isEmpty)
        try connection.timerTick(now: seconds(160))
        #expect(connection.takeOutbound() == wire(.keepAlive))
    }

    @Test func silentPeerIsDisconnectedAndKeepAlivesCountAsLife() throws {
        var connection = try establishedConnection(fast: true)  // last received at 0 s
        _ = try connection.feed(wire(.keepAlive), at: seconds(170))
        try connection.timerTick(now: seconds(349))
        #expect(
            disconnectReason { try connection.timerTick(now: seconds(350)) }
                == .peerSilent(silentNanoseconds: 180_000_000_000, limitNanoseconds: 180_000_000_000))
        #expect(connection.phase == .closed)
    }
}

func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

@Suite struct HostilePeerFuzzTests {
    /// A random message: mostly well framed, with fields that are often out of range.
    static func randomMessage(using random: inout SeededRandom) -> [UInt8] {
        func index() -> PieceIndex { PieceIndex(UInt32.random(in: 0...7, using: &random)) }
        func block() -> BlockRange {
            BlockRange(
                piece: index(), offset: [0, 16384, 16383, 0xffff_ffff].randomElement(using: &random) ?? 0,
                length: [1, 16384, 0, 131_073].randomElement(using: &random) ?? 1)
        }
        switch Int.random(in: 0..<12, using: &random) {
        case 0: return wire(.choke)
        case 1: return wire(.unchoke)
        case 2: return wire(.interested)
        case 3: return wire(.have(index()))
        case 4: return wire(.request(block()))
        case 5: return wire(.cancel(block()))
        case 6: return wire(.rejectRequest(block()))
        case 7:
            return [
                wire(.haveAll), wire(.haveNone), wire(.allowedFast(index())), wire(.suggestPiece(index())),
            ]
            .randomElement(using: &random) ?? []
        case 8: return bitfieldMessage([UInt8.random(in: 0...255, using: &random)])
        case 9:
            // A piece message for a random (often unrequested or invalid) block, payload capped at 20000.
            let b = block()
            let length = min(Int(b.length), 20000)
            return bigEndian(UInt32(9 + length)) + [7] + bigEndian(b.piece.value) + bigEndian(b.offset)
                + [UInt8](repeating: 0, count: length)
        case 10:
            let count = Int.random(in: 0...20, using: &random)
            return [0, 0, 0, UInt8(count + 1), UInt8.random(in: 0...30, using: &random)]
                + (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
        default: return wire(.keepAlive)
        }
    }

    @Test func randomMessagesEndInEventsOrATypedReasonNeverATrap() throws {
        var random = SeededRandom(seed: 0xbad)
        var closed = 0
        var survived = 0
        for round in 0..<400 {
            var connection = try establishedConnection(
                fast: round % 2 == 0, localPieces: PeerBitfieldFixtures.partial)
            if round % 3 == 0 { connection.unchoke() }
            var stream: [UInt8] = []
            for _ in 0..<Int.random(in: 1...12, using: &random) {
                stream += Self.randomMessage(using: &random)
            }
            var reason: DisconnectReason?
            var start = 0
            for size in randomChunkSizes(total: stream.count, using: &random) where start < stream.count {
                let end = min(stream.count, start + size)
                do {
                    _ = try connection.feed(Array(stream[start..<end]))
                    if Bool.random(using: &random) {
                        // The swarm reacts in between: requests and serves whatever it can.
                        connection.request(block0)
                        connection.cancel(block0)
                    }
                } catch {
                    reason = error
                    break
                }
                start = end
            }
            if let reason {
                closed += 1
                #expect(connection.phase == .closed && connection.closeReason == reason)
            } else {
                survived += 1
            }
        }
        #expect(closed > 0 && survived > 0)
    }
}
