import Hashing
import Testing
import TorrentModel

@testable import PeerWire

/// Metadata of `size` bytes that differs from seed to seed.
private func randomMetadata(size: Int, seed: UInt64) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    return (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
}

private func v1Hashes(of metadata: [UInt8]) -> InfoDictionaryHashes {
    InfoDictionaryHashes(v1: InfoHash(v1Digest: SHA1.hash(metadata)), v2: nil)!
}

/// How a simulated peer answers a request.
private enum Behaviour: Equatable {
    case honest
    /// Sends every piece with one byte changed.
    case corrupts
    /// Advertises another size and sends pieces of that (made-up) metadata.
    case claimsSize(Int)
}

/// The data message a peer with `behaviour` sends for `piece` of `metadata`.
private func answer(_ piece: Int, of metadata: [UInt8], _ behaviour: Behaviour) -> MetadataMessage {
    switch behaviour {
    case .honest:
        let range = MetadataMessage.pieceRange(piece: piece, metadataSize: metadata.count)
        return .data(piece: piece, totalSize: metadata.count, payload: Array(metadata[range]))
    case .corrupts:
        let range = MetadataMessage.pieceRange(piece: piece, metadataSize: metadata.count)
        var payload = Array(metadata[range])
        payload[payload.count / 2] ^= 0x55
        return .data(piece: piece, totalSize: metadata.count, payload: payload)
    case .claimsSize(let size):
        let length = MetadataMessage.pieceLength(piece: piece, metadataSize: size)
        return .data(piece: piece, totalSize: size, payload: [UInt8](repeating: 0xab, count: length))
    }
}

/// Plays up to 12 rounds a minute apart from `start`: in each, every request `behaviour` answers for is
/// answered at once (and the requests that follow), the others are left to lapse. Returns the outcomes.
private func playMinutes(
    of assembler: inout MetadataAssembler<Int>, metadata: [UInt8], from start: Instant,
    behaviour: (_ peer: Int, _ round: Int) -> Behaviour?
) -> [MetadataAssembler<Int>.Outcome] {
    var now = start
    var outcomes: [MetadataAssembler<Int>.Outcome] = []
    for round in 0..<12 where assembler.infoDictionary == nil {
        var requests = assembler.nextRequests(now: now)
        while let request = requests.popLast() {
            guard let answering = behaviour(request.peer, round) else { continue }
            outcomes.append(
                assembler.receive(
                    answer(request.piece, of: metadata, answering), from: request.peer, now: now))
            requests += assembler.nextRequests(now: now)
        }
        now = now.adding(seconds: 61)
    }
    return outcomes
}

@Suite struct MetadataAssemblerTests {
    static let metadata = randomMetadata(size: 40_000, seed: 1)

    @Test func fetchesFromOnePeerAtMostTwoRequestsAtATime() {
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: Self.metadata))
        let added = assembler.addPeer(1, metadataSize: Self.metadata.count)
        #expect(added)
        #expect(assembler.fractionReceived == 0)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 0), .init(peer: 1, piece: 1)])
        #expect(assembler.nextRequests(now: .zero).isEmpty, "two requests are already outstanding")
        #expect(
            assembler.receive(answer(0, of: Self.metadata, .honest), from: 1, now: .zero) == .stored(piece: 0)
        )
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 2)])
        #expect(
            assembler.receive(answer(2, of: Self.metadata, .honest), from: 1, now: .zero) == .stored(piece: 2)
        )
        #expect(assembler.fractionReceived == 2.0 / 3.0, "two of three pieces")
        #expect(
            assembler.receive(answer(1, of: Self.metadata, .honest), from: 1, now: .zero)
                == .completed(infoDictionary: Self.metadata, newlyFlagged: []))
        #expect(assembler.infoDictionary == Self.metadata)
        #expect(assembler.fractionReceived == 1)
        #expect(assembler.nextRequests(now: .zero).isEmpty)
        #expect(assembler.receive(answer(0, of: Self.metadata, .honest), from: 1, now: .zero) == .ignored)
    }

    @Test func spreadsRequestsOverPeers() {
        let metadata = randomMetadata(size: 10 * 16384, seed: 2)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        for peer in 1...3 { assembler.addPeer(peer, metadataSize: metadata.count) }
        let requests = assembler.nextRequests(now: .zero)
        #expect(requests.count == 6)
        #expect(Set(requests.map(\.piece)) == Set(0..<6))
        for peer in 1...3 { #expect(requests.filter { $0.peer == peer }.count == 2) }
    }

    /// A piece nobody asked this peer for is not taken, even when it is right: one peer must not fill
    /// the metadata on its own initiative.
    @Test func aPieceThatWasNotAskedForIsIgnored() {
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: Self.metadata))
        assembler.addPeer(1, metadataSize: Self.metadata.count)
        assembler.addPeer(2, metadataSize: Self.metadata.count)
        #expect(
            assembler.nextRequests(now: .zero) == [
                .init(peer: 1, piece: 0), .init(peer: 2, piece: 1), .init(peer: 1, piece: 2),
            ])
        #expect(assembler.receive(answer(0, of: Self.metadata, .honest), from: 2, now: .zero) == .ignored)
        #expect(assembler.fractionReceived == 0)
        #expect(
            assembler.receive(answer(0, of: Self.metadata, .honest), from: 1, now: .zero) == .stored(piece: 0)
        )
    }

    @Test func aRejectedPieceIsAskedOfAnotherPeerAndTheRefuserPauses() {
        let metadata = randomMetadata(size: 100, seed: 3)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: 100)
        assembler.addPeer(2, metadataSize: 100)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 0)])
        #expect(assembler.receive(.reject(piece: 0), from: 2, now: .zero) == .ignored, "not asked of peer 2")
        #expect(assembler.receive(.reject(piece: 0), from: 1, now: .zero) == .rejected(piece: 0))
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 2, piece: 0)])
        assembler.removePeer(2)
        #expect(assembler.nextRequests(now: seconds(59)).isEmpty, "peer 1 is still paused")
        #expect(assembler.nextRequests(now: seconds(60)) == [.init(peer: 1, piece: 0)])
    }

    @Test func anUnansweredRequestTimesOutAndMoves() {
        let metadata = randomMetadata(size: 100, seed: 4)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: 100)
        assembler.addPeer(2, metadataSize: 100)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 0)])
        #expect(assembler.nextRequests(now: seconds(19)).isEmpty)
        #expect(assembler.nextRequests(now: seconds(20)) == [.init(peer: 2, piece: 0)])
        // A late answer from the first peer is still welcome.
        #expect(
            assembler.receive(answer(0, of: metadata, .honest), from: 1, now: seconds(21))
                == .completed(infoDictionary: metadata, newlyFlagged: []))
    }

    /// Found by the MetadataFetch fuzzer: two silent peers, each free again as the other lapsed, were
    /// asked for the last piece ahead of an answering peer added after them.
    @Test func aPeerThatLetARequestLapseIsAskedAfterOneThatNeverRefused() {
        let metadata = randomMetadata(size: 100, seed: 12)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: 100)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 0)])
        #expect(assembler.nextRequests(now: seconds(20)).isEmpty, "peer 1 lapsed and is paused")
        assembler.addPeer(2, metadataSize: 100)
        #expect(assembler.nextRequests(now: seconds(90)) == [.init(peer: 2, piece: 0)])
    }

    @Test func aDisconnectedPeersPiecesMove() {
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: Self.metadata))
        assembler.addPeer(1, metadataSize: Self.metadata.count)
        assembler.addPeer(2, metadataSize: Self.metadata.count)
        let first = assembler.nextRequests(now: .zero)
        #expect(first.filter { $0.peer == 1 }.map(\.piece) == [0, 2])
        assembler.removePeer(1)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 2, piece: 0)])
        #expect(assembler.receive(answer(2, of: Self.metadata, .honest), from: 1, now: .zero) == .ignored)
    }

    @Test func aSoleSupplierOfWrongDataIsFlaggedAndSitsOut() {
        let metadata = randomMetadata(size: 100, seed: 5)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: 100)
        assembler.addPeer(2, metadataSize: 100)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 0)])
        #expect(
            assembler.receive(answer(0, of: metadata, .corrupts), from: 1, now: .zero)
                == .verificationFailed(suppliers: [1], newlyFlagged: [1]))
        #expect(assembler.peersWithWrongData == [1])
        assembler.addPeer(1, metadataSize: 100)
        #expect(
            assembler.nextRequests(now: .zero) == [.init(peer: 2, piece: 0)], "a flagged peer is not asked")
        #expect(assembler.receive(answer(0, of: metadata, .honest), from: 1, now: .zero) == .ignored)
        #expect(
            assembler.receive(answer(0, of: metadata, .honest), from: 2, now: .zero)
                == .completed(infoDictionary: metadata, newlyFlagged: []))
    }

    @Test func aTotalSizeUnlikeTheAdvertisedOneFlagsThePeer() {
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: Self.metadata))
        assembler.addPeer(1, metadataSize: Self.metadata.count)
        _ = assembler.nextRequests(now: .zero)
        #expect(
            assembler.receive(answer(0, of: Self.metadata, .claimsSize(50_000)), from: 1, now: .zero)
                == .sentWrongData)
        #expect(assembler.peersWithWrongData == [1])
    }

    /// Two peers agree on a size that is a lie and one peer has the truth: the majority's size is tried
    /// first, fails, and the lone peer's size wins; the two are then shown to have sent wrong data.
    @Test func disagreeingSizesAreEachTriedUntilOneVerifies() {
        let metadata = randomMetadata(size: 30_000, seed: 6)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        let behaviours: [Int: Behaviour] = [1: .claimsSize(50_000), 2: .claimsSize(50_000), 3: .honest]
        assembler.addPeer(1, metadataSize: 50_000)
        assembler.addPeer(2, metadataSize: 50_000)
        assembler.addPeer(3, metadataSize: 30_000)
        var outcomes: [MetadataAssembler<Int>.Outcome] = []
        for _ in 0..<10 {
            for request in assembler.nextRequests(now: .zero) {
                let message = answer(request.piece, of: metadata, behaviours[request.peer]!)
                outcomes.append(assembler.receive(message, from: request.peer, now: .zero))
            }
        }
        #expect(outcomes.contains(.verificationFailed(suppliers: [1, 2], newlyFlagged: [])))
        #expect(outcomes.last == .completed(infoDictionary: metadata, newlyFlagged: [1, 2]))
    }

    /// Found by the MetadataFetch fuzzer: a peer that claims another size and then says nothing won the
    /// tie of sizes and kept the attempt to itself, so the honest peer was never asked.
    @Test func aSilentPeerOfAnotherSizeDoesNotHoldBackAnHonestOne() {
        let metadata = randomMetadata(size: 40_000, seed: 8)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: 19_940)
        assembler.addPeer(2, metadataSize: metadata.count)
        #expect(assembler.nextRequests(now: .zero) == [.init(peer: 1, piece: 0), .init(peer: 1, piece: 1)])
        var received: MetadataAssembler<Int>.Outcome?
        for request in assembler.nextRequests(now: seconds(20)) {
            #expect(request.peer == 2, "peer 1 let its requests time out")
            received = assembler.receive(
                answer(request.piece, of: metadata, .honest), from: 2, now: seconds(20))
        }
        for request in assembler.nextRequests(now: seconds(20)) {
            received = assembler.receive(
                answer(request.piece, of: metadata, .honest), from: 2, now: seconds(20))
        }
        #expect(received == .completed(infoDictionary: metadata, newlyFlagged: []))
    }

    /// Found by the MetadataFetch fuzzer: after a failed check, two silent peers took turns as the single
    /// source, each free again just as the other timed out, and the honest suspect was never asked.
    @Test func silentPeersDoNotTakeTurnsAheadOfAnAnsweringSuspect() {
        let metadata = randomMetadata(size: 40_000, seed: 9)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: metadata.count)
        assembler.addPeer(2, metadataSize: 104_685)
        assembler.addPeer(3, metadataSize: metadata.count)
        // Peer 1 answers its first requests wrongly and then says nothing; peer 2 never answers; peer 3
        // answers everything at once.
        let outcomes = playMinutes(of: &assembler, metadata: metadata, from: .zero) { peer, round in
            peer == 3 ? .honest : peer == 1 && round == 0 ? .corrupts : nil
        }
        #expect(outcomes.contains(.verificationFailed(suppliers: [1, 3], newlyFlagged: [])))
        #expect(outcomes.last == .completed(infoDictionary: metadata, newlyFlagged: [1]))
    }

    /// Found by the MetadataFetch fuzzer: three sizes with one peer each; the two silent peers' sizes won
    /// the tie in turn, each peer free again just as the other timed out.
    @Test func silentPeersOfOtherSizesDoNotTakeTurnsAheadOfAnAnsweringOne() {
        let metadata = randomMetadata(size: 40_000, seed: 10)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: 104_685)
        assembler.addPeer(2, metadataSize: 2_991)
        assembler.addPeer(3, metadataSize: metadata.count)
        let outcomes = playMinutes(of: &assembler, metadata: metadata, from: .zero) { peer, _ in
            peer == 3 ? .honest : nil
        }
        #expect(outcomes.last == .completed(infoDictionary: metadata, newlyFlagged: []))
    }

    /// Found by the MetadataFetch fuzzer: two silent peers outvoted an honest one that had been slow once,
    /// and took turns with each other for ever.
    @Test func aPairOfSilentPeersLosesItsVoteToAnAnsweringPeer() {
        let metadata = randomMetadata(size: 40_000, seed: 11)
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        assembler.addPeer(1, metadataSize: metadata.count)
        #expect(assembler.nextRequests(now: .zero).count == 2)
        #expect(assembler.nextRequests(now: seconds(247)).isEmpty, "peer 1 let both requests lapse, paused")
        assembler.addPeer(2, metadataSize: 2_991)
        assembler.addPeer(3, metadataSize: 2_991)
        let outcomes = playMinutes(of: &assembler, metadata: metadata, from: seconds(247)) { peer, _ in
            peer == 1 ? .honest : nil
        }
        #expect(outcomes.last == .completed(infoDictionary: metadata, newlyFlagged: []))
    }

    @Test func v2AndHybridHashesAreChecked() {
        let metadata = randomMetadata(size: 20_000, seed: 7)
        let v2 = InfoDictionaryHashes(v1: nil, v2: SHA256.hash(metadata))!
        #expect(v2.matches(metadata))
        #expect(!v2.matches(Array(metadata.dropLast())))
        let hybridWithWrongV1 = InfoDictionaryHashes(
            v1: InfoHash(v1Digest: SHA1.hash([1])), v2: SHA256.hash(metadata))!
        #expect(!hybridWithWrongV1.matches(metadata))
        #expect(InfoDictionaryHashes(v1: nil, v2: nil) == nil)

        var assembler = MetadataAssembler<Int>(hashes: v2)
        assembler.addPeer(1, metadataSize: metadata.count)
        var last: MetadataAssembler<Int>.Outcome = .ignored
        for request in assembler.nextRequests(now: .zero) {
            last = assembler.receive(answer(request.piece, of: metadata, .honest), from: 1, now: .zero)
        }
        #expect(last == .completed(infoDictionary: metadata, newlyFlagged: []))
    }

    @Test func sizesOutsideTheLimitsAreRefused() {
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: Self.metadata))
        let empty = assembler.addPeer(1, metadataSize: 0)
        let tooLarge = assembler.addPeer(1, metadataSize: MetadataMessage.maximumMetadataSize + 1)
        #expect(!empty && !tooLarge)
        #expect(assembler.nextRequests(now: .zero).isEmpty)
        let largest = assembler.addPeer(1, metadataSize: MetadataMessage.maximumMetadataSize)
        #expect(largest)
        #expect(assembler.nextRequests(now: .zero).count == 2)
    }

    /// Random metadata fetched from a few simulated peers, some of which lie (wrong bytes or a made-up
    /// size), answering in random order, sometimes rejecting or never answering: the result must be the
    /// metadata, every liar that sent data must be flagged, and no honest peer.
    @Test(arguments: 0..<100) func randomSwarmsWithLiarsEndWithTheRightBytes(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let sizes = [1, 16383, 16384, 16385, 3 * 16384, Int.random(in: 1...200_000, using: &random)]
        let metadata = randomMetadata(size: sizes.randomElement(using: &random)!, seed: seed)
        let peerCount = Int.random(in: 1...6, using: &random)
        var behaviours = (0..<peerCount).map { _ -> Behaviour in
            switch Int.random(in: 0..<5, using: &random) {
            case 0: .corrupts
            case 1: .claimsSize(Int.random(in: 1...100_000, using: &random))
            default: .honest
            }
        }
        behaviours[Int.random(in: 0..<peerCount, using: &random)] = .honest
        var assembler = MetadataAssembler<Int>(hashes: v1Hashes(of: metadata))
        for (peer, behaviour) in behaviours.enumerated() {
            if case .claimsSize(let size) = behaviour {
                assembler.addPeer(peer, metadataSize: size)
            } else {
                assembler.addPeer(peer, metadataSize: metadata.count)
            }
        }

        var now = Instant.zero
        var outstanding: [MetadataAssembler<Int>.Request] = []
        var sentData: Set<Int> = []
        var result: [UInt8]?
        for _ in 0..<100_000 where result == nil {
            outstanding += assembler.nextRequests(now: now)
            guard !outstanding.isEmpty else {
                now = now.adding(seconds: 10)
                continue
            }
            let request = outstanding.remove(at: Int.random(in: 0..<outstanding.count, using: &random))
            now = now.advanced(byNanoseconds: UInt64.random(in: 0...2_000_000_000, using: &random))
            let message: MetadataMessage
            switch Int.random(in: 0..<20, using: &random) {
            case 0: continue  // never answered: the request times out
            case 1: message = .reject(piece: request.piece)
            default:
                message = answer(request.piece, of: metadata, behaviours[request.peer])
                sentData.insert(request.peer)
            }
            if case .completed(let bytes, _) = assembler.receive(message, from: request.peer, now: now) {
                result = bytes
            }
        }
        #expect(result == metadata)
        let liars = Set(behaviours.indices.filter { behaviours[$0] != .honest })
        #expect(assembler.peersWithWrongData.isSubset(of: liars), "an honest peer was flagged")
        #expect(liars.intersection(sentData).isSubset(of: assembler.peersWithWrongData), "a liar got away")
    }
}
