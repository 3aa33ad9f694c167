import Testing
import TorrentModel

@testable import Swarm

@Suite struct RequestReturnedTests {
    /// A request that came back unused (rejected, or dropped for want of memory) is open again at once:
    /// another peer can get it without waiting for a snub timeout.
    @Test func returnedRequestIsOpenAgainAtOnce() {
        let geometry = PieceGeometry(totalLength: 4 * 16384, pieceLength: 16384)
        var pipeline = RequestPipeline(geometry: geometry, seed: 1)
        let first = PeerSlot(0)
        let second = PeerSlot(1)
        var actions: [RequestAction] = []
        pipeline.peerConnected(first)
        pipeline.peerHaveAll(first, into: &actions)
        pipeline.peerUnchokedUs(first, at: .zero, into: &actions)
        let requested = actions.compactMap { action -> BlockRange? in
            if case .request(first, let block) = action { return block }
            return nil
        }
        #expect(requested.count == 4, "one peer takes every block of this small torrent")
        let returned = requested[0]
        #expect(pipeline.picker.blockState(of: returned) == .requested)

        actions.removeAll()
        pipeline.requestReturned(returned, from: first, at: .zero, into: &actions)
        // Open again and handed straight back out: the peer's queue is topped up with it.
        #expect(actions == [.request(first, returned)])
        #expect(pipeline.outstandingRequests(of: first).contains(returned))

        // Returning a block the peer never had outstanding changes nothing.
        var none: [RequestAction] = []
        pipeline.requestReturned(
            BlockRange(piece: PieceIndex(3), offset: 0, length: 16384), from: second, at: .zero, into: &none)
    }
}
