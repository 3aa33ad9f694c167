import TorrentModel
import Tracker
import URing

/// One tracker's answer to a scrape.
public struct TrackerScrapeResult: Sendable {
    /// The announce URL as written in the torrent.
    public var tracker: String
    /// Seeders, leechers and completed downloads, or why there are none.
    public var outcome: Result<ScrapeCounts, TrackerFailure>
}

/// Swarm numbers from a scrape (BEP 48 over HTTP, BEP 15 over UDP).
public struct ScrapeCounts: Sendable, Hashable {
    public var seeders: Int64
    public var leechers: Int64
    public var completed: Int64
}

/// Scrapes every tracker of a torrent at once, on a ring of its own (for `potluck info --scrape`).
public enum TrackerScraper {
    /// Asks each tracker in `trackers` (BEP 12 tiers, flattened) about `infoHash`, all in parallel, and
    /// waits at most `timeoutSeconds` for the answers. A tracker that does not know the torrent reports
    /// zeros, as BEP 48 has it.
    public static func scrape(
        trackers: [[String]], infoHash: InfoHash, timeoutSeconds: UInt64, extraCAFile: String? = nil,
        seed: UInt64 = 1
    ) throws(RingUnavailableError) -> [TrackerScrapeResult] {
        let ring = try Ring(options: RingOptions(entries: 64))
        var limits = TrackerClient.Limits()
        limits.httpTimeoutSeconds = timeoutSeconds
        limits.connectTimeoutSeconds = min(limits.connectTimeoutSeconds, timeoutSeconds)
        // Retransmit sooner than BEP 15's 15 s, or a lost datagram would use up the whole wait.
        limits.udp = UDPTrackerClient.Options(baseTimeoutSeconds: max(1, timeoutSeconds / 4))
        let resolver = HostResolver(waker: ring.waker)
        let client = TrackerClient(
            ring: ring, limits: limits, seed: seed, resolver: resolver, extraCAFile: extraCAFile
        ) { _ in }
        defer { client.closeAll() }
        let started = ContinuousClock.now
        func now() -> UInt64 {
            let elapsed = ContinuousClock.now - started
            return UInt64(elapsed.components.seconds) * 1_000_000_000
                + UInt64(elapsed.components.attoseconds / 1_000_000_000)
        }
        // A moment past the exchanges' own timeouts, so that they report what they were waiting for.
        let deadline = timeoutSeconds * 1_000_000_000 + 500_000_000
        var results: [TrackerScrapeResult] = []
        var pending: [(text: String, url: TrackerURL)] = []
        var seen = Set<String>()
        for text in trackers.joined() where seen.insert(text).inserted {
            do {
                pending.append((text, try TrackerURL(text)))
            } catch {
                results.append(TrackerScrapeResult(tracker: text, outcome: .failure(.tracker(error))))
            }
        }
        var running: [TrackerClient.ExchangeID: String] = [:]
        while now() < deadline && (!pending.isEmpty || !running.isEmpty) {
            // Trackers whose host name is being resolved (or, `https`, whose certificates are loading)
            // wait here.
            pending.removeAll { entry in
                if client.mustWait(for: entry.url) { return false }
                running[client.begin(.scrape([infoHash]), url: entry.url, now: now())] = entry.text
                return true
            }
            for (id, reply) in client.takeFinished() {
                guard let text = running.removeValue(forKey: id) else { continue }
                let outcome: Result<ScrapeCounts, TrackerFailure>
                switch reply {
                case .scraped(let entries):
                    let entry = entries.first { $0.infoHash == infoHash }
                    outcome = .success(
                        ScrapeCounts(
                            seeders: entry?.seederCount ?? 0, leechers: entry?.leecherCount ?? 0,
                            completed: entry?.completedCount ?? 0))
                case .failed(let failure):
                    outcome = .failure(failure)
                case .announced:
                    continue
                }
                results.append(TrackerScrapeResult(tracker: text, outcome: outcome))
            }
            guard !pending.isEmpty || !running.isEmpty else { break }
            do {
                try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(100))
            } catch {
                break
            }
            let current = now()
            ring.drain { completion in
                if [TrackerClient.owner, UDPTrackerTransport.owner].contains(completion.slot.owner) {
                    client.handle(completion, now: current)
                }
            }
            client.tick(now: current)
        }
        let seconds = Int(timeoutSeconds)
        for text in running.values + pending.map(\.text) {
            let stage = text.lowercased().hasPrefix("udp:") ? "UDP scrape" : "scrape"
            results.append(
                TrackerScrapeResult(
                    tracker: text, outcome: .failure(.timedOut(stage: stage, seconds: seconds))))
        }
        let order = Dictionary(
            trackers.joined().enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        return results.sorted { (order[$0.tracker] ?? 0) < (order[$1.tracker] ?? 0) }
    }
}
