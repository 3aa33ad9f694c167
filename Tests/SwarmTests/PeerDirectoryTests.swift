import Testing
import TorrentModel

@testable import Swarm

@Suite struct PeerDirectoryTests {
    static func at(_ seconds: Double) -> Instant { Instant(nanoseconds: UInt64(seconds * 1e9)) }

    @Test func addressesAreListedOnceInTheOrderHeardAndBounded() {
        var configuration = PeerDirectory<Int>.Configuration()
        configuration.maximumCandidates = 4
        var directory = PeerDirectory<Int>(configuration: configuration)
        #expect(directory.add([3, 1, 3]) == 2)
        #expect(directory.add([1, 2, 5, 6]) == 2, "1 is known; 6 is beyond the limit")
        #expect(directory.count == 4)
        #expect(directory.takeCandidates(limit: 10, at: Self.at(0)) == [3, 1, 2, 5])
        #expect(directory.takeCandidates(limit: 10, at: Self.at(0)).isEmpty, "all connected")
    }

    /// A full list (a hostile DHT node answering with addresses that never answer, say) gives the
    /// places of failed, unconnected peers to new addresses; connected, banned and untried ones stay.
    @Test func aFullListReplacesFailedPeers() {
        var configuration = PeerDirectory<Int>.Configuration()
        configuration.maximumCandidates = 4
        var directory = PeerDirectory<Int>(configuration: configuration)
        directory.add(1...4)
        #expect(directory.takeCandidates(limit: 3, at: Self.at(0)) == [1, 2, 3])
        directory.disconnected(1, at: Self.at(0))
        directory.ban(2)
        directory.disconnected(2, at: Self.at(0))
        // 1 failed: replaced by 5; 2 is banned, 3 connected and 4 never tried, so 6 finds no place.
        #expect(directory.add([5, 6]) == 1)
        #expect(directory.count == 4 && directory.isBanned(2) && directory.isConnected(3))
        #expect(directory.takeCandidates(limit: 10, at: Self.at(3600)) == [5, 4])
        directory.disconnected(4, at: Self.at(3600))
        #expect(directory.add([1]) == 1, "a replaced address can be heard of again")
        #expect(directory.takeCandidates(limit: 10, at: Self.at(7200)) == [1], "in 4's place")
    }

    @Test func takingRespectsTheLimitAndUntriedPeersComeBackFirst() {
        var directory = PeerDirectory<Int>()
        directory.add(1...5)
        #expect(directory.takeCandidates(limit: 2, at: Self.at(0)) == [1, 2])
        directory.untried(1)
        #expect(directory.takeCandidates(limit: 2, at: Self.at(0)) == [1, 3], "no back-off for untried")
        #expect(directory.takeCandidates(limit: 0, at: Self.at(0)).isEmpty)
    }

    @Test func failuresBackOffDoublingUpToTheMaximum() {
        var directory = PeerDirectory<Int>()
        directory.add([7])
        var now = 0.0
        var waits: [Double] = []
        for _ in 0..<9 {
            #expect(directory.takeCandidates(limit: 1, at: Self.at(now)) == [7])
            directory.disconnected(7, at: Self.at(now))
            #expect(!directory.isConnected(7))
            // The first instant (in 0.5 s steps) it is offered again.
            var wait = 0.0
            while directory.takeCandidates(limit: 1, at: Self.at(now + wait)).isEmpty { wait += 0.5 }
            directory.untried(7)
            waits.append(wait)
            now += wait
        }
        #expect(waits == [1, 2, 4, 8, 16, 32, 60, 60, 60])
    }

    @Test func aBannedPeerIsNeverOfferedAgain() {
        var directory = PeerDirectory<Int>()
        directory.add([1, 2])
        #expect(directory.takeCandidates(limit: 2, at: Self.at(0)) == [1, 2])
        directory.ban(1)
        directory.disconnected(1, at: Self.at(0))
        directory.disconnected(2, at: Self.at(0))
        #expect(directory.isBanned(1) && !directory.isBanned(2))
        #expect(directory.takeCandidates(limit: 2, at: Self.at(3600)) == [2])
        #expect(directory.add([1]) == 0, "a banned address stays listed, so it is not added afresh")
    }
}
