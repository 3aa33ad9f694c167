import Glibc
import Testing
import TorrentModel
import Tracker
import URing

@testable import Engine

/// Scrapes from many torrents go to their tracker together: one request for up to 74 infohashes, each
/// asker answered with its own entry (`FakeUDPTracker` plays the tracker).
@Suite struct ScrapeBatcherTests {
    static func pump(
        _ ring: Ring, _ batcher: ScrapeBatcher, _ transport: UDPTrackerTransport, now: UInt64
    ) throws {
        let deadline = ContinuousClock.now + .milliseconds(50)
        repeat {
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(10))
            ring.drain { completion in
                switch completion.slot.owner {
                case UDPTrackerTransport.owner: transport.handle(completion, now: now)
                case TrackerClient.owner: batcher.handle(completion, now: now)
                default: break
                }
            }
        } while ContinuousClock.now < deadline
    }

    static func bigEndian32(_ value: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(value).bigEndian) { Array($0) }
    }

    @Test func torrentsAskingOneTrackerGoInOneRequest() throws {
        let ring = try Ring()
        let tracker = try FakeUDPTracker()
        let transport = UDPTrackerTransport(ring: ring) { _ in }
        let batcher = ScrapeBatcher(ring: ring, udp: transport, seed: 3) { _ in }
        defer {
            batcher.close()
            transport.shutDown()
        }
        let url = try TrackerURL("udp://127.0.0.1:\(tracker.port)/announce")
        let second: UInt64 = 1_000_000_000
        let count = ScrapeBatcher.maximumPerRequest + 6
        let hashes = (0..<count).map { InfoHash(Array(repeating: UInt8($0), count: 20))! }
        var answers: [InfoHash: ScrapeEntry] = [:]
        func ask(_ hashes: ArraySlice<InfoHash>, now: UInt64) {
            for hash in hashes {
                batcher.scrape(hash, at: url, now: now) { reply in
                    guard case .scraped(let entries) = reply else { return }
                    answers[hash] = entries.first { $0.infoHash == hash }
                }
            }
        }
        // A few: nothing goes out while others may still join...
        ask(hashes[..<5], now: 0)
        batcher.tick(now: ScrapeBatcher.gatherNanoseconds - 1)
        try Self.pump(ring, batcher, transport, now: 0)
        #expect(tracker.receive(within: 100) == nil)
        // ... but a full batch goes at once: one connect, and after it two scrapes (74 and the 6 left).
        ask(hashes[5...], now: second / 2)
        batcher.tick(now: second / 2)
        try Self.pump(ring, batcher, transport, now: second)
        // The tracker's side: connects get a connection id, scrapes an answer (seeders: the
        // infohash's first byte; completed 2; leechers 1). The two scrapes go one after the other: a
        // client asks one tracker address one thing at a time.
        var scrapes: [[UInt8]] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while answers.count < count, ContinuousClock.now < deadline {
            guard let datagram = tracker.receive(within: 100) else { continue }
            if datagram.count == 16 {
                tracker.send([0, 0, 0, 0] + datagram[12..<16] + [1, 2, 3, 4, 5, 6, 7, 8])
            } else {
                scrapes.append(datagram)
                var reply: [UInt8] = [0, 0, 0, 2] + Array(datagram[12..<16])
                for start in stride(from: 16, to: datagram.count, by: 20) {
                    reply +=
                        Self.bigEndian32(Int(datagram[start])) + Self.bigEndian32(2) + Self.bigEndian32(1)
                }
                tracker.send(reply)
            }
            try Self.pump(ring, batcher, transport, now: second)
        }
        #expect(scrapes.map { ($0.count - 16) / 20 } == [ScrapeBatcher.maximumPerRequest, 6])
        #expect(answers.count == count)
        for hash in hashes {
            #expect(answers[hash]?.seederCount == Int64(hash.bytes[0]), "\(hash)")
            #expect(answers[hash]?.leecherCount == 1)
        }
        #expect(!batcher.isBusy)
    }
}
