import Testing

@testable import PotluckDaemon

/// The queue's order, its moves, and which waiting torrents it starts.
@Suite struct TorrentQueueTests {
    typealias Queue = TorrentQueue<String>

    @Test func newTorrentsGoLastAndRemovingClosesTheGap() {
        var queue = Queue()
        for id in ["a", "b", "c", "d"] { queue.append(id) }
        queue.append("b")
        #expect(queue.order == ["a", "b", "c", "d"])
        queue.remove(["b"])
        #expect(queue.order == ["a", "c", "d"])
        #expect(queue.position(of: "d") == 2)
        #expect(queue.position(of: "b") == nil)
    }

    @Test func anOrderWithDuplicatesKeepsTheFirstOfEach() {
        #expect(Queue(order: ["a", "b", "a", "c", "b"]).order == ["a", "b", "c"])
    }

    @Test func placingClampsToTheQueue() {
        var queue = Queue(order: ["a", "b", "c", "d"])
        queue.place("d", at: 1)
        #expect(queue.order == ["a", "d", "b", "c"])
        queue.place("a", at: 99)
        #expect(queue.order == ["d", "b", "c", "a"])
        queue.place("c", at: -5)
        #expect(queue.order == ["c", "d", "b", "a"])
        queue.place("x", at: 0)
        #expect(queue.order == ["c", "d", "b", "a"])
    }

    @Test func topAndBottomMoveTheSelectionTogetherInItsOrder() {
        var queue = Queue(order: ["a", "b", "c", "d", "e"])
        queue.move(["d", "b"], .top)
        #expect(queue.order == ["b", "d", "a", "c", "e"])
        queue.move(["b", "a"], .bottom)
        #expect(queue.order == ["d", "c", "e", "b", "a"])
    }

    /// Up and down move each selected torrent one place; a block of selected torrents moves as one, and
    /// one already at the end stays.
    @Test func upAndDownMoveOnePlace() {
        var queue = Queue(order: ["a", "b", "c", "d", "e"])
        queue.move(["c", "d"], .up)
        #expect(queue.order == ["a", "c", "d", "b", "e"])
        queue.move(["a", "d"], .up)
        #expect(queue.order == ["a", "d", "c", "b", "e"])
        queue.move(["a", "d"], .down)
        #expect(queue.order == ["c", "a", "d", "b", "e"])
        queue.move(["d", "e"], .down)
        #expect(queue.order == ["c", "a", "b", "d", "e"])
        queue.move(["d", "e"], .down)
        #expect(queue.order == ["c", "a", "b", "d", "e"])
        queue.move(["b", "d", "e"], .up)
        #expect(queue.order == ["c", "b", "d", "e", "a"])
    }

    @Test func waitingTorrentsStartInQueueOrderUpToTheLimit() {
        let queue = Queue(order: ["a", "b", "c", "d"])
        let standings: [String: Queue.Standing] = [
            "a": .waiting(.download), "b": .waiting(.download), "c": .waiting(.download), "d": .inactive,
        ]
        #expect(queue.toStart(standings, limits: .init(downloads: 1, seeds: nil)) == ["a"])
        #expect(queue.toStart(standings, limits: .init(downloads: 2, seeds: nil)) == ["a", "b"])
        // A queue that is off starts every waiting torrent.
        #expect(queue.toStart(standings, limits: .init(downloads: nil, seeds: nil)) == ["a", "b", "c"])
        #expect(queue.toStart(standings, limits: .init(downloads: 0, seeds: nil)).isEmpty)
    }

    @Test func runningTorrentsTakeSlotsUnlessStalled() {
        let queue = Queue(order: ["a", "b", "c", "d"])
        var standings: [String: Queue.Standing] = [
            "a": .running(.download, stalled: false), "b": .waiting(.download), "c": .waiting(.download),
            "d": .running(.seed, stalled: false),
        ]
        let limits = Queue.Limits(downloads: 2, seeds: 1)
        #expect(queue.toStart(standings, limits: limits) == ["b"])
        standings["a"] = .running(.download, stalled: true)
        #expect(queue.toStart(standings, limits: limits) == ["b", "c"])
        // More running than a lowered limit allows: nothing starts, and nothing is asked to stop.
        standings["b"] = .running(.download, stalled: false)
        standings["c"] = .running(.download, stalled: false)
        standings["a"] = .waiting(.download)
        #expect(queue.toStart(standings, limits: .init(downloads: 1, seeds: 1)).isEmpty)
    }

    /// Downloads and seeds have slots of their own: a full download queue does not hold a seed back.
    @Test func eachDirectionHasItsOwnSlots() {
        let queue = Queue(order: ["a", "b", "c", "d"])
        let standings: [String: Queue.Standing] = [
            "a": .running(.download, stalled: false), "b": .waiting(.download), "c": .waiting(.seed),
            "d": .waiting(.seed),
        ]
        #expect(queue.toStart(standings, limits: .init(downloads: 1, seeds: 1)) == ["c"])
        #expect(queue.toStart(standings, limits: .init(downloads: 1, seeds: nil)) == ["c", "d"])
        #expect(queue.toStart(standings, limits: .init(downloads: 2, seeds: 0)) == ["b"])
    }

    /// A newcomer (last in the queue) starts only when the running and waiting torrents of its direction
    /// leave a slot, as `toStart` would decide with it waiting last.
    @Test func aNewcomerStartsOnlyWhenItsDirectionHasRoom() {
        let others: [Queue.Standing] = [
            .running(.download, stalled: false), .waiting(.download), .running(.download, stalled: true),
            .running(.seed, stalled: false), .inactive,
        ]
        for downloads in 0...4 {
            let limits = Queue.Limits(downloads: downloads, seeds: 1)
            let admitted = Queue.admitsNewcomer(.download, among: others, limits: limits)
            var standings = Dictionary(uniqueKeysWithValues: others.enumerated().map { ("\($0)", $1) })
            standings["new"] = .waiting(.download)
            let queue = Queue(order: (0..<others.count).map { "\($0)" } + ["new"])
            #expect(admitted == queue.toStart(standings, limits: limits).contains("new"), "\(downloads)")
            #expect(admitted == (downloads > 2))
        }
        #expect(!Queue.admitsNewcomer(.seed, among: others, limits: .init(downloads: nil, seeds: 1)))
        #expect(Queue.admitsNewcomer(.seed, among: others, limits: .init(downloads: 0, seeds: nil)))
    }

    /// A torrent the order does not know of (never appended) is never started by it.
    @Test func onlyTorrentsInTheOrderStart() {
        let queue = Queue(order: ["a"])
        #expect(
            queue.toStart(
                ["a": .waiting(.download), "z": .waiting(.download)], limits: .init(downloads: 5, seeds: nil))
                == ["a"])
    }
}
