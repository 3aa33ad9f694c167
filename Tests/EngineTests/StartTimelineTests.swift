import Foundation
import Metainfo
import Testing
import TorrentModel
import URing

@testable import Engine

/// The timeline `--verbose` logs once a download's first piece is on disk.
@Suite struct StartTimelineTests {
    @Test func itIsToldOnceTheFirstPieceIsWrittenWithTheStepsThatHappened() {
        var timeline = StartTimeline(start: 1_000_000_000)
        let steps: [(StartTimeline.Step, UInt64)] = [
            (.filesKnown, 1_002_500_000), (.firstConnect, 1_003_000_000), (.connected, 1_003_140_000),
            (.handshake, 1_003_300_000), (.firstBlock, 1_004_000_000), (.pieceVerified, 1_009_000_000),
        ]
        for (step, time) in steps { #expect(timeline.record(step, at: time) == nil) }
        // A second first block changes nothing.
        #expect(timeline.record(.firstBlock, at: 1_005_000_000) == nil)
        let line = timeline.record(.pieceWritten, at: 1_012_345_678)
        #expect(
            line
                == "start: files known 2.5, first connect 3.0, connected 3.1, handshake 3.3, first block 4.0, "
                + "first piece verified 9.0, written 12.3 (ms from the torrent's start)")
        // Never again: only the first piece makes the timeline.
        #expect(timeline.record(.pieceWritten, at: 1_020_000_000) == nil)
    }

    @Test func aDownloadLogsItsStartInOrder() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("timeline-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("timeline-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let metainfo = try EngineTests.makeTorrent(named: "t.bin", size: 600_000, seed: 9, in: seedDirectory)
        let seeder = try PeerExchangeTests.Peer(metainfo, directory: seedDirectory, listen: "127.0.0.2") {
            $0.seedWhenComplete = true
        }
        #expect(EngineTests.eventually { seeder.address != nil })
        let seederAddress = try #require(seeder.address)
        let leecher = try PeerExchangeTests.Peer(metainfo, directory: leechDirectory, listen: "127.0.0.3") {
            $0.peers = [seederAddress]
        }
        #expect(
            EngineTests.eventually { leecher.engine.snapshot(leecher.id)?.isLive == false }, "\(leecher.log)")

        let lines = leecher.log.split(separator: "\n").filter { $0.hasPrefix("start: ") }
        #expect(lines.count == 1, "\(leecher.log)")
        let line = try #require(lines.first)
        // Every step, in the order they must happen, each no earlier than the one before.
        let labels = [
            "files known", "first connect", "connected", "handshake", "unchoked", "first block",
            "first piece verified", "written",
        ]
        var previous = 0.0
        var rest = Substring(line.dropFirst("start: ".count))
        for label in labels {
            #expect(rest.hasPrefix(label + " "), "\(line)")
            rest = rest.dropFirst(label.count + 1)
            let number = rest.prefix { $0.isNumber || $0 == "." }
            let milliseconds = try #require(Double(number), "\(line)")
            #expect(milliseconds >= previous, "\(line)")
            previous = milliseconds
            rest = rest.dropFirst(number.count).drop { $0 == "," || $0 == " " }
        }
        #expect(rest == "(ms from the torrent's start)", "\(line)")
        // A seed writes nothing, so it has no start to tell.
        #expect(!seeder.log.contains("start: "), "\(seeder.log)")
    }
}
