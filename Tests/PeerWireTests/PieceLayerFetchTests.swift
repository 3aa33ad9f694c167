import Hashing
import Testing
import TorrentModel

@testable import PeerWire

/// BEP 52 piece layers for a v2-only magnet link: the requests, and what answers, refusals, liars and
/// silence lead to.
@Suite struct PieceLayerFetchTests {
    static func digest(_ seed: Int) -> SHA256Digest {
        SHA256Digest(bytes: (0..<32).map { UInt8(truncatingIfNeeded: seed &* 31 &+ $0) })!
    }

    static let root = digest(1_000_000)
    /// The layer the fake root stands for: the verifier accepts exactly this.
    static let layer = (0..<611).map(digest)
    static let need = PieceLayerFetch<Int>.Need(piecesRoot: root, pieceCount: 611, baseLayer: 0)

    static func fetch() -> PieceLayerFetch<Int> {
        PieceLayerFetch(needs: [need]) { root, hashes in root == Self.root && hashes == Self.layer }
    }

    /// The answer to `request` from the true layer: `length` hashes, padding past the end.
    static func answer(_ request: HashRequest) -> [SHA256Digest] {
        (Int(request.index)..<Int(request.index + request.length)).map { $0 < 611 ? layer[$0] : digest(-1) }
    }

    @Test func theWireFormatRoundTrips() {
        let request = HashRequest(
            piecesRoot: Self.root, baseLayer: 2, index: 512, length: 512, proofLayers: 0)
        let bytes = request.encodedRequest()
        #expect(bytes.prefix(5) == [0, 0, 0, 49, 21])
        #expect(HashRequest(header: bytes.dropFirst(5)) == request)
        #expect(HashRequest(header: bytes.dropFirst(6)) == nil, "a short header")
    }

    /// A layer of 611 pieces: two runs of 512 (a power of two, the index a multiple of it), spread over
    /// the peers; complete once both arrived and the layer hashes to the root.
    @Test func aLayerComesInRunsFromSeveralPeersAndIsVerified() {
        var fetch = Self.fetch()
        let requests = fetch.nextRequests(peers: [1, 2], now: .zero)
        #expect(requests.map(\.0.index) == [0, 512] && requests.allSatisfy { $0.0.length == 512 })
        #expect(Set(requests.map(\.1)) == [1, 2])
        #expect(fetch.nextRequests(peers: [1, 2], now: .zero).isEmpty, "nothing asked twice")
        #expect(
            fetch.receivedHashes(requests[0].0, hashes: Self.answer(requests[0].0), from: requests[0].1)
                == .stored)
        #expect(
            fetch.receivedHashes(requests[0].0, hashes: Self.answer(requests[0].0), from: requests[0].1)
                == .ignored,
            "a duplicate")
        #expect(
            fetch.receivedHashes(requests[1].0, hashes: Self.answer(requests[1].0), from: requests[1].1)
                == .fileCompleted(Self.root))
        #expect(fetch.isComplete && fetch.layers[Self.root] == Self.layer)
    }

    /// Hashes that do not hash to the root: the sender is not asked for that file again, the layer is
    /// asked of another peer.
    @Test func aLiarIsNotAskedAgain() {
        var fetch = Self.fetch()
        let requests = fetch.nextRequests(peers: [1], now: .zero)
        #expect(fetch.receivedHashes(requests[0].0, hashes: Self.answer(requests[0].0), from: 1) == .stored)
        var wrong = Self.answer(requests[1].0)
        wrong[3] = Self.digest(-7)
        #expect(
            fetch.receivedHashes(requests[1].0, hashes: wrong, from: 1) == .wrongHashes(Self.root, liar: 1))
        #expect(fetch.nextRequests(peers: [1], now: .zero).isEmpty)
        let again = fetch.nextRequests(peers: [1, 2], now: .zero)
        #expect(again.count == 2 && again.allSatisfy { $0.1 == 2 })
    }

    /// A layer that fails with parts from two peers blames neither: the file is asked of one peer at a
    /// time from then on, so an honest peer completes it even beside a liar.
    @Test func aLiarAmongSeveralSendersCannotGetAnHonestPeerExcluded() {
        var fetch = Self.fetch()
        let requests = fetch.nextRequests(peers: [1, 2], now: .zero)
        let liar = requests[1].1
        let honest = requests[0].1
        #expect(
            fetch.receivedHashes(requests[0].0, hashes: Self.answer(requests[0].0), from: honest) == .stored)
        var wrong = Self.answer(requests[1].0)
        wrong[0] = Self.digest(-7)
        #expect(
            fetch.receivedHashes(requests[1].0, hashes: wrong, from: liar)
                == .wrongHashes(Self.root, liar: nil),
            "two senders: nobody is named")
        let again = fetch.nextRequests(peers: [1, 2], now: .zero)
        #expect(again.count == 2 && Set(again.map(\.1)).count == 1, "one peer at a time")
        guard again[0].1 == honest else {
            // The liar got them: its own failure now names it alone.
            for (request, peer) in again { _ = fetch.receivedHashes(request, hashes: wrong, from: peer) }
            let last = fetch.nextRequests(peers: [1, 2], now: .zero)
            #expect(last.allSatisfy { $0.1 == honest })
            return
        }
        for (request, peer) in again.dropLast() {
            #expect(fetch.receivedHashes(request, hashes: Self.answer(request), from: peer) == .stored)
        }
        let (request, peer) = again[again.count - 1]
        #expect(
            fetch.receivedHashes(request, hashes: Self.answer(request), from: peer)
                == .fileCompleted(Self.root))
    }

    /// A refusal, and silence past the timeout, send the run to another peer; an answer from a peer not
    /// asked is ignored.
    @Test func refusalsAndSilenceGoElsewhere() {
        var fetch = Self.fetch()
        let requests = fetch.nextRequests(peers: [1], now: .zero)
        #expect(fetch.receivedHashes(requests[0].0, hashes: Self.answer(requests[0].0), from: 9) == .ignored)
        fetch.receivedReject(requests[0].0, from: 1)
        let retried = fetch.nextRequests(peers: [1, 2], now: .zero)
        #expect(retried.map(\.1) == [2] && retried[0].0 == requests[0].0)
        let later = Instant(nanoseconds: 10_000_000_000)
        #expect(fetch.nextRequests(peers: [1, 2], now: later).isEmpty, "both went silent: neither is asked")
        #expect(fetch.nextRequests(peers: [1, 2, 3], now: later).map(\.1) == [3, 3])
        fetch.removePeer(3)
        #expect(fetch.nextRequests(peers: [4], now: later).count == 2, "a departed peer's runs go elsewhere")
    }
}
