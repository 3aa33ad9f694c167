import Testing
import TransmissionRPC

@testable import PotluckDaemon

/// torrent-set's tracker edits on a torrent's announce list: tiers, ids that stay, and refusals.
@Suite struct AnnounceListTests {
    private func failure(_ edit: (inout AnnounceList) throws -> Void, on list: AnnounceList) -> String? {
        var list = list
        do {
            try edit(&list)
            return nil
        } catch {
            return (error as? RPCFailure)?.message ?? "\(error)"
        }
    }

    private let metainfoTiers = [["http://a/announce", "http://b/announce"], ["udp://c:6969"]]

    @Test func theTorrentsTiersAreNumberedInOrder() {
        let list = AnnounceList(tiers: metainfoTiers + [["http://a/announce"], []])
        #expect(list.trackers.map(\.id) == [0, 1, 2])
        #expect(list.trackers.map(\.tier) == [0, 0, 1])
        #expect(list.tiers == metainfoTiers)
    }

    /// As Transmission does: each new URL in a tier of its own, listed ones skipped.
    @Test func addedTrackersGetTiersOfTheirOwnAndNewIds() throws {
        var list = AnnounceList(tiers: metainfoTiers)
        try list.add(["http://d/announce", "http://a/announce", "udp://e:80"])
        #expect(list.tiers == metainfoTiers + [["http://d/announce"], ["udp://e:80"]])
        #expect(list.trackers.map(\.id) == [0, 1, 2, 3, 4])
        var empty = AnnounceList(tiers: [])
        try empty.add(["http://t/announce"])
        #expect(empty.trackers == [AnnounceList.Tracker(id: 0, tier: 0, announce: "http://t/announce")])
    }

    @Test func removedTrackersTakeTheirIdsWithThemAndTiersCloseUp() throws {
        var list = AnnounceList(tiers: metainfoTiers + [["http://d/announce"]])
        try list.remove(ids: [2])
        #expect(list.tiers == [["http://a/announce", "http://b/announce"], ["http://d/announce"]])
        #expect(list.trackers.map(\.tier) == [0, 0, 1])
        try list.add(["http://e/announce"])
        // Id 2 is not given out again: a client holding it must not remove the new tracker.
        #expect(list.trackers.map(\.id) == [0, 1, 3, 4])
        try list.remove(ids: [0, 1, 3, 4])
        #expect(list.tiers.isEmpty)
    }

    @Test func replacedTrackersKeepTheirIdAndTier() throws {
        var list = AnnounceList(tiers: metainfoTiers)
        try list.replace([TrackerReplacement(id: 1, announce: "https://z/announce")])
        #expect(list.trackers[1] == AnnounceList.Tracker(id: 1, tier: 0, announce: "https://z/announce"))
    }

    /// 4.0's `trackerList`: blank lines end tiers (several count as one), lines are trimmed, and the
    /// trackers still listed keep their ids.
    @Test func aTrackerListTextReplacesTheTiersKeepingKnownIds() throws {
        var list = AnnounceList(tiers: metainfoTiers)
        try list.setList("udp://c:6969\r\n\n\n  http://n/announce \nhttp://a/announce\n\n")
        #expect(list.tiers == [["udp://c:6969"], ["http://n/announce", "http://a/announce"]])
        #expect(list.trackers.map(\.id) == [2, 3, 0])
        #expect(
            try AnnounceList.parse("http://x/a\nhttp://x/a\n\n\nhttp://y/a") == [
                ["http://x/a"], ["http://y/a"],
            ])
        try list.setList("")
        #expect(list.trackers.isEmpty)
    }

    @Test func badEditsAreRefusedWithTheReason() {
        let list = AnnounceList(tiers: metainfoTiers)
        #expect(
            failure({ try $0.add(["ftp://x/announce"]) }, on: list)?.contains("invalid announce URL") == true)
        #expect(failure({ try $0.add(["http://a/announce"]) }, on: list)?.contains("already listed") == true)
        #expect(failure({ try $0.remove(ids: [0, 9]) }, on: list)?.contains("no tracker has id 9") == true)
        #expect(
            failure({ try $0.replace([TrackerReplacement(id: 7, announce: "http://q/a")]) }, on: list)?
                .contains("no tracker has id 7") == true)
        #expect(
            failure({ try $0.replace([TrackerReplacement(id: 0, announce: "http://b/announce")]) }, on: list)?
                .contains("already listed") == true)
        #expect(failure({ try $0.setList("http://a/announce\nnot a url") }, on: list) != nil)
        let long = "http://a/" + String(repeating: "x", count: AnnounceList.maximumURLBytes)
        #expect(failure({ try $0.add([long]) }, on: list)?.contains("longer than") == true)
        let many = (0...AnnounceList.maximumTrackers).map { "http://t\($0)/announce" }
        #expect(
            failure({ try $0.setList(many.joined(separator: "\n")) }, on: list)?.contains("more than") == true
        )
        #expect(failure({ try $0.add(many) }, on: list)?.contains("more than") == true)
    }

    /// What the backend applies: every edit of one torrent-set, in Transmission's order.
    @Test func oneTorrentSetMayCarrySeveralEdits() throws {
        var changes = TorrentChanges()
        changes.trackerRemove = [0]
        changes.trackerAdd = ["http://new/announce"]
        let edited = try EngineBackend.edited(AnnounceList(tiers: metainfoTiers), by: changes, newList: nil)
        #expect(edited.tiers == [["http://b/announce"], ["udp://c:6969"], ["http://new/announce"]])
        #expect(edited.trackers.map(\.id) == [1, 2, 3])
    }
}
