import Testing
import TorrentModel

@testable import Engine

@Suite struct ChangeJournalTests {
    @Test func namesEachIDChangedSinceAMarkOnce() {
        var journal = ChangeJournal<Int>(capacity: 8)
        #expect(journal.changedIDs(since: 0) == [])
        journal.record(1)
        let mark = journal.mark
        journal.record(2)
        journal.record(3)
        journal.record(2)
        #expect(journal.changedIDs(since: mark) == [2, 3])
        #expect(journal.changedIDs(since: 0) == [1, 2, 3])
        #expect(journal.changedIDs(since: journal.mark) == [])
        #expect(journal.changedIDs(since: journal.mark + 1) == nil, "a mark it never gave")
        #expect(journal.changedIDs(since: -1) == nil)
    }

    /// Past its capacity it forgets the oldest half: a mark from before them gets nil (look at every
    /// id), a later one still gets exactly its changes.
    @Test func forgetsTheOldestChangesAndSaysSo() {
        var journal = ChangeJournal<Int>(capacity: 4)
        let start = journal.mark
        for id in 1...4 { journal.record(id) }
        let afterFour = journal.mark
        #expect(journal.changedIDs(since: start) == [1, 2, 3, 4])
        journal.record(5)
        #expect(journal.changedIDs(since: start) == nil)
        #expect(journal.changedIDs(since: start + 2) == [3, 4, 5])
        #expect(journal.changedIDs(since: afterFour) == [5])
        for id in 6...20 { journal.record(id) }
        #expect(journal.changedIDs(since: afterFour) == nil)
        #expect(journal.changedIDs(since: journal.mark - 2) == [19, 20])
    }

    /// Against a log that keeps everything, over random changes and marks.
    @Test(arguments: 0..<20) func agreesWithAFullLog(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var journal = ChangeJournal<Int>(capacity: 16)
        var everything: [Int] = []
        for _ in 0..<200 {
            let id = Int.random(in: 0..<30, using: &random)
            journal.record(id)
            everything.append(id)
            let since = Int.random(in: 0...everything.count, using: &random)
            let answer = journal.changedIDs(since: since)
            if everything.count - since <= 8 {
                #expect(answer == Set(everything[since...]), "the last 8 are always known")
            }
            if let answer { #expect(answer == Set(everything[since...])) }
        }
    }
}
