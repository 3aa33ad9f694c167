import Testing
import TorrentModel

@testable import Swarm

@Suite struct TorrentLifecycleTests {
    typealias Stage = TorrentLifecycle.Stage
    let start = Instant(nanoseconds: 1_000_000_000)

    func at(_ seconds: UInt64) -> Instant { start.adding(seconds: seconds) }

    @Test func aDownloadChecksDownloadsThenEndsThroughEveryStep() {
        var life = TorrentLifecycle(seedsWhenComplete: false)
        #expect(life.handle(.started(needsCheck: true, isComplete: false), now: start) == .checking)
        #expect(life.handle(.checkFinished(isComplete: false), now: start) == .downloading)
        #expect(life.handle(.seedLimitReached, now: start) == nil, "a leecher has no seed limit")
        #expect(
            life.handle(.allPiecesWritten, now: at(5))
                == .finishingWrites(.completed, deadline: at(35)))
        #expect(life.handle(.writesLanded, now: at(6)) == .drainingSends(.completed, deadline: at(8)))
        #expect(life.handle(.sendsDrained, now: at(6)) == .stoppingTrackers(.completed))
        #expect(life.handle(.trackersDone, now: at(7)) == .closing(.completed))
        #expect(life.ending == nil)
        #expect(life.handle(.drained, now: at(7)) == .gone(.completed))
        #expect(life.ending == .completed)
        #expect(life.handle(.failed, now: at(8)) == nil, "gone is final")
    }

    @Test func aSeedSeedsUntilItsLimit() {
        var life = TorrentLifecycle(seedsWhenComplete: true)
        #expect(life.handle(.started(needsCheck: false, isComplete: false), now: start) == .downloading)
        #expect(life.handle(.allPiecesWritten, now: start) == .seeding)
        #expect(life.handle(.allPiecesWritten, now: start) == nil)
        #expect(life.handle(.seedLimitReached, now: at(1)) == .finishingWrites(.completed, deadline: at(31)))
    }

    @Test func onlyASeedRestsAndRestingTellsNoTracker() {
        var life = TorrentLifecycle(seedsWhenComplete: true)
        life.handle(.started(needsCheck: false, isComplete: false), now: start)
        #expect(life.handle(.restRequested, now: start) == nil, "a download has work to do")
        life.handle(.allPiecesWritten, now: start)
        #expect(life.handle(.restRequested, now: at(30)) == .closing(.rested), "no tracker is told")
        #expect(life.ending == nil)
        #expect(life.handle(.drained, now: at(30)) == .gone(.rested))
        #expect(life.ending == .rested)
        var stopping = TorrentLifecycle(seedsWhenComplete: true)
        stopping.handle(.started(needsCheck: false, isComplete: true), now: start)
        stopping.handle(.stopRequested, now: start)
        #expect(stopping.handle(.restRequested, now: start) == nil, "an ending torrent ends")
    }

    @Test func aSeedWhoseFileSelectionGrowsDownloadsAgain() {
        var life = TorrentLifecycle(seedsWhenComplete: true)
        life.handle(.started(needsCheck: false, isComplete: false), now: start)
        life.handle(.allPiecesWritten, now: start)
        #expect(life.handle(.moreWanted, now: at(1)) == .downloading)
        #expect(life.handle(.moreWanted, now: at(1)) == nil, "only a seed goes back")
        #expect(life.handle(.allPiecesWritten, now: at(2)) == .seeding)
    }

    @Test func aCompleteTorrentThatIsNotToSeedHasNothingToDo() {
        var life = TorrentLifecycle(seedsWhenComplete: false)
        #expect(
            life.handle(.started(needsCheck: false, isComplete: true), now: start) == .closing(.completed))
        var checked = TorrentLifecycle(seedsWhenComplete: true)
        checked.handle(.started(needsCheck: true, isComplete: false), now: start)
        #expect(checked.handle(.checkFinished(isComplete: true), now: start) == .seeding)
    }

    @Test func aStopDuringTheCheckWaitsForTheCheckToDrain() {
        var life = TorrentLifecycle(seedsWhenComplete: true)
        life.handle(.started(needsCheck: true, isComplete: false), now: start)
        #expect(life.handle(.stopRequested, now: start) == nil, "the check's reads are still in flight")
        #expect(life.stopRequestedWhileChecking)
        #expect(life.handle(.checkDrained, now: start) == .closing(.interrupted))
        // Or the check finished on its own meanwhile: the stop still wins.
        var finished = TorrentLifecycle(seedsWhenComplete: true)
        finished.handle(.started(needsCheck: true, isComplete: false), now: start)
        finished.handle(.stopRequested, now: start)
        #expect(finished.handle(.checkFinished(isComplete: true), now: start) == .closing(.interrupted))
        // A drain without a stop means nothing.
        var running = TorrentLifecycle(seedsWhenComplete: true)
        running.handle(.started(needsCheck: true, isComplete: false), now: start)
        #expect(running.handle(.checkDrained, now: start) == nil)
    }

    @Test func deadlinesBoundEachStepOfAnEnding() {
        var life = TorrentLifecycle(seedsWhenComplete: false)
        life.handle(.started(needsCheck: false, isComplete: false), now: start)
        #expect(life.handle(.stopRequested, now: start) == .finishingWrites(.interrupted, deadline: at(30)))
        #expect(life.handle(.tick, now: at(29)) == nil)
        #expect(life.handle(.tick, now: at(30)) == .drainingSends(.interrupted, deadline: at(32)))
        #expect(life.handle(.tick, now: at(31)) == nil)
        #expect(life.handle(.tick, now: at(32)) == .stoppingTrackers(.interrupted))
        #expect(life.handle(.tick, now: at(100)) == nil, "trackers have their own bound")
    }

    @Test func anErrorGoesStraightToTheTrackersFromAnyLiveStage() {
        let reach: [(String, (inout TorrentLifecycle) -> Void)] = [
            ("idle", { _ in }),
            (
                "checking",
                { $0.handle(.started(needsCheck: true, isComplete: false), now: Instant(nanoseconds: 0)) }
            ),
            (
                "downloading",
                { $0.handle(.started(needsCheck: false, isComplete: false), now: Instant(nanoseconds: 0)) }
            ),
            (
                "finishing",
                {
                    $0.handle(.started(needsCheck: false, isComplete: false), now: Instant(nanoseconds: 0))
                    $0.handle(.stopRequested, now: Instant(nanoseconds: 0))
                }
            ),
        ]
        for (name, prepare) in reach {
            var life = TorrentLifecycle(seedsWhenComplete: true)
            prepare(&life)
            #expect(life.handle(.failed, now: start) == .stoppingTrackers(.failed), "from \(name)")
            #expect(life.isEnding)
            #expect(life.handle(.failed, now: start) == nil, "a second error changes nothing")
            life.handle(.trackersDone, now: start)
            life.handle(.drained, now: start)
            #expect(life.ending == .failed)
        }
    }

    @Test func aStopBeforeStartingEndsAtOnce() {
        var life = TorrentLifecycle(seedsWhenComplete: true)
        #expect(life.handle(.stopRequested, now: start) == .gone(.interrupted))
        #expect(life.handle(.started(needsCheck: false, isComplete: true), now: start) == nil)
    }

    /// Whatever events arrive, in any order, a torrent that is told to stop and whose steps all
    /// complete ends, and never leaves `gone`.
    @Test(arguments: 0..<200) func anyEventSequenceThenAStopEnds(seed: Int) {
        var random = SeededRandom(seed: UInt64(seed))
        let events: [TorrentLifecycle.Event] = [
            .started(needsCheck: true, isComplete: false), .started(needsCheck: false, isComplete: true),
            .checkFinished(isComplete: false), .checkFinished(isComplete: true), .checkDrained,
            .stopRequested,
            .allPiecesWritten, .seedLimitReached, .writesLanded, .sendsDrained, .trackersDone, .drained,
            .failed,
            .tick,
        ]
        var life = TorrentLifecycle(seedsWhenComplete: seed % 2 == 0)
        var now = start
        for _ in 0..<Int(random.next() % 30) {
            let event = events[Int(random.next() % UInt64(events.count))]
            let wasGone = life.ending != nil
            life.handle(event, now: now)
            #expect(!wasGone || life.ending != nil, "gone is final")
            now = now.adding(seconds: random.next() % 10)
        }
        for event: TorrentLifecycle.Event in [
            .started(needsCheck: false, isComplete: false), .stopRequested, .checkDrained, .writesLanded,
            .sendsDrained, .trackersDone, .drained,
        ] {
            life.handle(event, now: now)
        }
        #expect(life.ending != nil, "stuck in \(life.stage)")
    }
}
