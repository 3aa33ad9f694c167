import Testing
import TorrentModel

@testable import Swarm

/// A choker with its emitted actions and a virtual clock.
struct ChokerHarness {
    var choker: Choker
    var actions: [ChokeAction] = []

    init(seed: UInt64 = 7, configuration: Choker.Configuration = .init()) {
        choker = Choker(configuration: configuration, seed: seed)
    }

    mutating func connectInterested(_ slots: Range<UInt32>, at now: Instant) {
        for slot in slots {
            choker.peerConnected(PeerSlot(slot), at: now)
            choker.peerInterested(PeerSlot(slot), at: now, into: &actions)
        }
    }

    /// Advances second by second to `end`, letting `perSecond` feed traffic before each tick.
    mutating func run(
        from start: Int, to end: Int, perSecond: (inout Choker, Instant) -> Void = { _, _ in }
    ) {
        guard start <= end else { return }
        for second in start...end {
            let now = Instant.seconds(Double(second))
            perSecond(&choker, now)
            choker.tick(at: now, into: &actions)
        }
    }

    var regularPeers: Set<PeerSlot> { Set(choker.unchokedPeers.filter { $0 != choker.optimisticPeer }) }
}

@Suite struct ChokerTests {
    @Test func regularSlotsGoToTheBestReciprocators() {
        var harness = ChokerHarness()
        harness.connectInterested(0..<8, at: .zero)
        harness.run(from: 0, to: 10) { choker, now in
            for slot in UInt32(0)..<8 {
                choker.receivedPayload(from: PeerSlot(slot), bytes: Int(slot + 1) * 10_000, at: now)
            }
        }
        #expect(harness.regularPeers == Set((4..<8).map { PeerSlot($0) }))
        let optimistic = try! #require(harness.choker.optimisticPeer)
        #expect(optimistic.value < 4)
        #expect(harness.choker.unchokedPeers.count == 5)
    }

    @Test func ratesAreOnlyJudgedAtTheRechoke() {
        var harness = ChokerHarness()
        harness.connectInterested(0..<6, at: .zero)
        let early = harness.choker.unchokedPeers
        harness.run(from: 0, to: 9) { choker, now in
            choker.receivedPayload(from: PeerSlot(5), bytes: 100_000, at: now)
        }
        #expect(harness.choker.unchokedPeers == early, "no change between rechokes")
        harness.run(from: 10, to: 10)
        #expect(harness.regularPeers.contains(PeerSlot(5)))
    }

    @Test func aPeerSilentForSixtySecondsIsNotAReciprocator() {
        var configuration = Choker.Configuration()
        configuration.rateWindow = .seconds(300)  // so only the anti-snub rule can demote it
        var harness = ChokerHarness(configuration: configuration)
        harness.connectInterested(0..<8, at: .zero)
        harness.run(from: 0, to: 80) { choker, now in
            for slot in UInt32(0)..<7 {
                choker.receivedPayload(from: PeerSlot(slot), bytes: Int(slot + 1) * 1_000, at: now)
            }
            if now.nanoseconds <= 5_000_000_000 {
                choker.receivedPayload(from: PeerSlot(7), bytes: 10_000_000, at: now)
            }
            if now == .seconds(50) {
                #expect(choker.isUnchoked(PeerSlot(7)) && choker.optimisticPeer != PeerSlot(7))
            }
        }
        #expect(!harness.regularPeers.contains(PeerSlot(7)), "silent since t=5s")
        #expect(harness.regularPeers == Set((3..<7).map { PeerSlot($0) }))
    }

    @Test func optimisticSlotRotatesEveryThirtySeconds() {
        var harness = ChokerHarness()
        harness.connectInterested(0..<10, at: .zero)
        var history: [PeerSlot?] = []
        harness.run(from: 0, to: 300) { choker, now in
            for slot in UInt32(0)..<4 { choker.receivedPayload(from: PeerSlot(slot), bytes: 50_000, at: now) }
            history.append(choker.optimisticPeer)
        }
        history.append(harness.choker.optimisticPeer)
        // history[i] is the optimistic peer before the tick at second i.
        let changes = (1..<history.count).filter { history[$0] != history[$0 - 1] }
        #expect(changes.allSatisfy { ($0 - 1) % 30 == 0 }, "changes only at 30 s rotations: \(changes)")
        #expect(Set(history.compactMap { $0 }).count >= 4, "the slot visits several peers")
        #expect(history.allSatisfy { $0 == nil || $0!.value >= 4 }, "reciprocators hold regular slots")
    }

    @Test func newPeersAreLikelierOptimisticPicks() {
        var configuration = Choker.Configuration()
        configuration.regularUnchokeSlots = 0
        var newPicks = 0
        let runs = 400
        for seed in 0..<runs {
            var harness = ChokerHarness(seed: UInt64(seed), configuration: configuration)
            harness.connectInterested(0..<4, at: .zero)
            harness.run(from: 0, to: 0)
            harness.connectInterested(4..<5, at: .seconds(120))  // the others are 90 s old by then
            harness.run(from: 150, to: 150)
            if harness.choker.optimisticPeer == PeerSlot(4) { newPicks += 1 }
        }
        // Weighted 3:1:1:1:1 the new peer wins 3/7 of draws; unweighted it would win 1/5.
        #expect(Double(newPicks) / Double(runs) > 0.33, "\(newPicks) of \(runs)")
    }

    @Test func seedingServesEveryInterestedPeerInTurn() {
        var harness = ChokerHarness()
        var actions: [ChokeAction] = []
        harness.choker.setSeeding(true, at: .zero, into: &actions)
        harness.connectInterested(0..<12, at: .zero)
        var served = [Int](repeating: 0, count: 12)
        harness.run(from: 0, to: 600) { choker, now in
            for peer in choker.unchokedPeers {
                choker.sentPayload(to: peer, bytes: 1_000_000, at: now)
                served[peer.index] += 1_000_000
            }
        }
        let least = served.min()!
        let most = served.max()!
        #expect(least > 0, "every peer is served")
        #expect(Double(most) / Double(least) < 2, "served fairly: \(served)")
    }

    @Test func seedingPrefersFasterDownloadersWithinATurn() {
        var configuration = Choker.Configuration()
        configuration.regularUnchokeSlots = 2
        var harness = ChokerHarness(configuration: configuration)
        var actions: [ChokeAction] = []
        harness.choker.setSeeding(true, at: .zero, into: &actions)
        harness.connectInterested(0..<2, at: .zero)
        harness.run(from: 0, to: 9) { choker, now in
            choker.sentPayload(to: PeerSlot(0), bytes: 10_000, at: now)
            choker.sentPayload(to: PeerSlot(1), bytes: 900_000, at: now)
        }
        // Two more peers arrive: the optimistic slot takes one; the other waits for a turn to end.
        harness.connectInterested(2..<4, at: .seconds(10))
        #expect(harness.choker.unchokedPeers.count == 3)
        harness.run(from: 10, to: 10)
        #expect(harness.regularPeers.contains(PeerSlot(1)), "the fast downloader keeps its slot")
    }

    @Test func aFreedSlotIsFilledAtOnce() {
        var harness = ChokerHarness()
        harness.connectInterested(0..<6, at: .zero)
        #expect(harness.choker.unchokedPeers.count == 5, "four regular slots and one optimistic, at once")
        let waiting = try! #require((0..<6).map { PeerSlot($0) }.first { !harness.choker.isUnchoked($0) })
        let leaving = harness.regularPeers.first!
        harness.actions.removeAll()
        harness.choker.peerDisconnected(leaving, at: .seconds(1), into: &harness.actions)
        #expect(harness.actions == [.unchoke(waiting)])
        let bored = harness.regularPeers.first!
        harness.actions.removeAll()
        harness.choker.peerNotInterested(bored, at: .seconds(2), into: &harness.actions)
        #expect(harness.actions == [.choke(bored)], "no one else is waiting")
        harness.actions.removeAll()
        harness.connectInterested(9..<10, at: .seconds(3))
        #expect(harness.actions == [.unchoke(PeerSlot(9))])
    }

    @Test func aFreedOptimisticSlotIsRedrawnAtOnce() {
        var harness = ChokerHarness()
        harness.connectInterested(0..<7, at: .zero)
        let optimistic = try! #require(harness.choker.optimisticPeer)
        let regular = harness.regularPeers
        harness.actions.removeAll()
        harness.choker.peerDisconnected(optimistic, at: .seconds(1), into: &harness.actions)
        let successor = try! #require(harness.choker.optimisticPeer)
        #expect(harness.actions == [.unchoke(successor)])
        #expect(!regular.contains(successor) && successor != optimistic)
        #expect(harness.regularPeers == regular, "regular slots are untouched")
    }

    @Test func peersThatAreNotInterestedAreNeverUnchoked() {
        var harness = ChokerHarness()
        for slot in UInt32(0)..<3 { harness.choker.peerConnected(PeerSlot(slot), at: .zero) }
        harness.run(from: 0, to: 60) { choker, now in
            choker.receivedPayload(from: PeerSlot(0), bytes: 1_000, at: now)
        }
        #expect(harness.actions.isEmpty)
    }
}
