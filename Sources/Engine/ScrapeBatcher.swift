import TorrentModel
import Tracker
import URing

/// Scrapes (BEP 48 over HTTP, BEP 15 over UDP) for every torrent on a reactor, gathered per tracker: a
/// daemon with 10,000 torrents on one tracker asks it in 136 requests of 74 infohashes, not 10,000 of
/// one. A torrent's request waits up to ``gatherNanoseconds`` for others to join it; the answer goes
/// back to each asker with its own entry (a tracker that does not know a torrent leaves it out).
///
/// Invariants: every request is answered exactly once (with the tracker's reply or a failure), unless
/// the batcher is closed first; a batch never holds more than ``maximumPerRequest`` infohashes.
final class ScrapeBatcher {
    /// What a UDP scrape carries at most, and short enough for an HTTP URL (74 × 60 characters).
    static let maximumPerRequest = UDPTrackerPacket.maxScrapeInfoHashes
    static let gatherNanoseconds: UInt64 = 1_000_000_000
    static let tickNanoseconds: UInt64 = 250_000_000

    typealias Reply = (TrackerClient.Reply) -> Void

    private struct Request {
        let infoHash: InfoHash
        let reply: Reply
    }

    private let client: TrackerClient
    private var gathering: [TrackerURL: (since: UInt64, requests: [Request])] = [:]
    private var asking: [TrackerClient.ExchangeID: [Request]] = [:]

    init(ring: Ring, udp: UDPTrackerTransport, seed: UInt64, log: @escaping (String) -> Void) {
        var limits = TrackerClient.Limits()
        // One exchange per tracker per batch, however many trackers the torrents name.
        limits.maxExchanges = 512
        client = TrackerClient(
            ring: ring, limits: limits, seed: seed, resolver: HostResolver(waker: ring.waker),
            udpTransport: udp,
            log: log)
        client.udpExchangeEnded = { [unowned self] _ in answer() }
    }

    /// Whether anything waits to be sent or answered (the reactor ticks the batcher only then).
    var isBusy: Bool { !gathering.isEmpty || !asking.isEmpty }

    /// Asks `url` about `infoHash` with the next batch; `reply` is called on the reactor once.
    func scrape(_ infoHash: InfoHash, at url: TrackerURL, now: UInt64, reply: @escaping Reply) {
        gathering[url, default: (now, [])].requests.append(Request(infoHash: infoHash, reply: reply))
    }

    /// Sends the batches that have gathered long enough (or are full), once their tracker's host name
    /// is known; retransmissions and timeouts.
    func tick(now: UInt64) {
        client.tick(now: now)
        answer()
        for (url, batch) in gathering
        where (now >= batch.since + Self.gatherNanoseconds || batch.requests.count >= Self.maximumPerRequest)
            && !client.mustWait(for: url)
        {
            gathering[url] = nil
            var start = 0
            while start < batch.requests.count {
                let chunk = Array(
                    batch.requests[start..<min(start + Self.maximumPerRequest, batch.requests.count)])
                start += chunk.count
                asking[client.begin(.scrape(chunk.map(\.infoHash)), url: url, now: now)] = chunk
            }
        }
        // An exchange may fail as it begins.
        answer()
    }

    /// A completion whose token carries ``TrackerClient/owner`` and the reactor's own tenant.
    func handle(_ completion: Completion, now: UInt64) {
        client.handle(completion, now: now)
        answer()
    }

    /// Closes the sockets; requests not answered yet are dropped.
    func close() {
        client.closeAll()
        gathering.removeAll()
        asking.removeAll()
    }

    private func answer() {
        for (id, reply) in client.takeFinished() {
            guard let requests = asking.removeValue(forKey: id) else { continue }
            for request in requests { request.reply(reply) }
        }
    }
}
