import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// Trackers for real: Debian's opentracker (through `Tests/Interop/tracker.py`) with libtorrent seeders
/// announcing to it, and `Tests/Interop/bad_tracker.py` for trackers that misbehave. Loopback only.
@Suite(.serialized) struct TrackerInteropTests {
    /// `potluck create` with `trackers` as tiers, one URL each; returns the torrent's path.
    static func create(_ data: URL, trackers: [String], name: String) throws -> String {
        let torrent = data.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(name).path
        let made = try runPotluck(
            ["create", "-q", "--force", "--piece-size", "32K", "-o", torrent, data.path]
                + trackers.flatMap { ["--tracker", $0] })
        #expect(made.status == 0, "\(made.error)")
        return torrent
    }

    static func infoHash(_ torrent: String) throws -> String {
        let info = try runPotluck(["info", "--json", torrent])
        let object = try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any]
        return try #require(object?["infohash_v1"] as? String)
    }

    /// `potluck info --scrape --json`: each tracker's entry.
    static func scrape(_ torrent: String, extra: [String] = []) throws -> [[String: Any]] {
        let result = try runPotluck(["info", "--scrape", "--scrape-timeout", "5", "--json", torrent] + extra)
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        return object?["scrape"] as? [[String: Any]] ?? []
    }

    /// Scrapes until every tracker reports `seeders` (the seeders announce once they have checked
    /// their data, a moment after they say they are ready).
    static func waitForSeeders(_ seeders: Int, torrent: String) throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(30)
        var entries: [[String: Any]] = []
        while Date() < deadline {
            entries = try scrape(torrent)
            let counted = entries.filter { ($0["seeders"] as? Int) == seeders }
            if !entries.isEmpty && counted.count == entries.count { break }
            usleep(300_000)
        }
        return entries
    }

    /// A payload whose torrent is whitelisted on a fresh opentracker; returns the tracker's URLs.
    static func payloadAndTracker(
        sizes: [Int]
    ) throws -> (root: URL, data: URL, tracker: BackgroundProcess, http: String, udp: String) {
        let (root, data) = try Interop.makePayload(sizes: sizes)
        // The infohash does not depend on the announce URLs, so a torrent without them names the hash
        // to whitelist before the tracker (and so its URLs) exists.
        let bare = try create(data, trackers: [], name: "bare.torrent")
        let tracker = try harnessProcess([
            Interop.tool("tracker.py"), "start", "--http-port", "0", "--udp-port", "0", "--whitelist",
            try infoHash(bare),
        ])
        let http = try #require(tracker.ready?["http"] as? String, "opentracker did not start")
        let udp = try #require(tracker.ready?["udp"] as? String)
        return (root, data, tracker, http, udp)
    }

    @Test(arguments: ["http", "udp"])
    func downloadsWithNoPeerOptionFromSeedersFoundThroughOpentracker(transport: String) throws {
        let setup = try Self.payloadAndTracker(sizes: [2_000_000, 500_001])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let url = transport == "http" ? setup.http : setup.udp
        let torrent = try Self.create(setup.data, trackers: [url], name: "t.torrent")
        #expect(
            try Self.infoHash(torrent)
                == Self.infoHash(setup.root.appendingPathComponent("bare.torrent").path))
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, setup.data.deletingLastPathComponent().path, "--count",
            "3",
        ])
        defer { seeders.stop() }
        #expect((seeders.ready?["peers"] as? [String])?.count == 3)
        let entries = try Self.waitForSeeders(3, torrent: torrent)
        #expect(entries.first?["seeders"] as? Int == 3, "\(entries)")

        let target = setup.root.appendingPathComponent("download")
        let result = try runPotluck(["download", "-q", "--verbose", torrent, "-o", target.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(setup.data, target.appendingPathComponent("payload")))
        // The whole lifecycle, in order: counted in, finished, gone.
        let log = result.error
        let started = log.range(of: "tracker \(url): started answered: ")
        let completed = log.range(of: "tracker \(url): completed answered")
        let stopped = log.range(of: "tracker \(url): stopped answered")
        #expect(started != nil && completed != nil && stopped != nil, "\(log)")
        if let started, let completed, let stopped {
            // The three seeders, and maybe ourselves (opentracker lists the announcer too; we skip it).
            let count = Int(log[started.upperBound...].prefix { $0.isNumber }) ?? 0
            #expect(count >= 3, "\(log)")
            #expect(started.upperBound < completed.lowerBound && completed.upperBound < stopped.lowerBound)
        }
        // Opentracker counted the completion.
        let after = try Self.scrape(torrent)
        #expect(after.first?["completed"] as? Int == 1, "\(after)")
    }

    @Test func scrapeReportsEachTrackerAndWhyOneFailed() throws {
        let setup = try Self.payloadAndTracker(sizes: [300_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        // A UDP port with nobody behind it: the kernel answers "port unreachable".
        let closed = unusedUDPPort()
        let deadTracker = "udp://127.0.0.1:\(closed)/announce"
        let torrent = try Self.create(
            setup.data, trackers: [setup.http, setup.udp, deadTracker], name: "t.torrent")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, setup.data.deletingLastPathComponent().path, "--count",
            "2",
        ])
        defer { seeders.stop() }
        var entries: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            entries = try Self.scrape(torrent)
            if entries.prefix(2).allSatisfy({ $0["seeders"] as? Int == 2 }) { break }
            usleep(300_000)
        }
        #expect(entries.map { $0["tracker"] as? String } == [setup.http, setup.udp, deadTracker])
        for entry in entries.prefix(2) {
            #expect(entry["seeders"] as? Int == 2, "\(entry)")
            #expect(entry["leechers"] as? Int == 0, "\(entry)")
            #expect(entry["completed"] as? Int == 0, "\(entry)")
        }
        let failure = entries.last?["error"] as? String ?? ""
        #expect(failure.contains("refused"), "\(entries)")

        let text = try runPotluck(["info", "--scrape", "--scrape-timeout", "5", torrent])
        #expect(text.output.contains("\(setup.udp): seeders 2, leechers 0, completed 0"), "\(text.output)")

        // Host names are looked up (off the reactor thread): `localhost` reaches the same tracker.
        let byName = [setup.http, setup.udp].map {
            $0.replacingOccurrences(of: "127.0.0.1", with: "localhost")
        }
        let named = try Self.create(setup.data, trackers: byName, name: "named.torrent")
        let namedEntries = try Self.scrape(named)
        #expect(namedEntries.map { $0["tracker"] as? String } == byName)
        #expect(namedEntries.allSatisfy { $0["seeders"] as? Int == 2 }, "\(namedEntries)")
    }

    /// BEP 12: dead trackers in the first tiers are passed over, the working one is used, and the
    /// download completes from the peers it names.
    @Test func fallsThroughDeadTiersToAWorkingTracker() throws {
        let setup = try Self.payloadAndTracker(sizes: [1_000_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let deadUDP = "udp://127.0.0.1:\(unusedUDPPort())/announce"
        // A TCP port nobody listens on (the UDP probe's number is as good as any free one).
        let deadHTTP = "http://127.0.0.1:\(unusedUDPPort())/announce"
        let torrent = try Self.create(
            setup.data, trackers: [deadHTTP, deadUDP, setup.udp], name: "t.torrent")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", setup.root.appendingPathComponent("bare.torrent").path,
            setup.data.deletingLastPathComponent().path, "--count", "2", "--tracker", setup.udp,
        ])
        defer { seeders.stop() }
        let bareWithTracker = try Self.create(setup.data, trackers: [setup.udp], name: "udp.torrent")
        _ = try Self.waitForSeeders(2, torrent: bareWithTracker)
        let target = setup.root.appendingPathComponent("download")
        let result = try runPotluck(["download", "-q", "--verbose", torrent, "-o", target.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(setup.data, target.appendingPathComponent("payload")))
        let log = result.error
        #expect(log.contains("tracker \(deadHTTP): started failed: connect to"), "\(log)")
        #expect(log.contains("tracker \(deadUDP): started failed:"), "\(log)")
        #expect(log.contains("tracker \(setup.udp): started answered"), "\(log)")
        // The tracker that answered is the one told we are leaving.
        #expect(log.contains("tracker \(setup.udp): stopped answered"), "\(log)")
        #expect(!log.contains("tracker \(deadHTTP): announcing stopped"), "\(log)")
    }

    @Test func httpsTrackerWithASelfSignedCertificateTheUserTrusts() throws {
        let setup = try Self.payloadAndTracker(sizes: [1_500_000, 70_000])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let certificate = setup.root.appendingPathComponent("cert.pem").path
        let key = setup.root.appendingPathComponent("key.pem").path
        let made = try ExternalCommand.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                key,
                "-out", certificate, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
        try #require(made.status == 0, "openssl could not make a certificate")
        // TLS in front of opentracker's HTTP port: a real tracker behind HTTPS.
        let upstream = setup.http.dropFirst("http://".count).prefix { $0 != "/" }
        let proxy = try harnessProcess([
            Interop.tool("tls_proxy.py"), "--cert", certificate, "--key", key, "--to", String(upstream),
        ])
        defer { proxy.stop() }
        let https = try #require(proxy.ready?["https"] as? String, "the TLS proxy did not start")
        let torrent = try Self.create(setup.data, trackers: [https], name: "t.torrent")
        // libtorrent does not trust the certificate: the seeders announce over plain HTTP, with a torrent
        // that differs only in its announce URL (same infohash).
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", setup.root.appendingPathComponent("bare.torrent").path,
            setup.data.deletingLastPathComponent().path, "--count", "2", "--tracker", setup.http,
        ])
        defer { seeders.stop() }
        let trust = ["--tracker-ca", certificate]
        let deadline = Date().addingTimeInterval(30)
        var entries: [[String: Any]] = []
        while Date() < deadline {
            entries = try Self.scrape(torrent, extra: trust)
            if entries.first?["seeders"] as? Int == 2 { break }
            usleep(300_000)
        }
        #expect(entries.first?["seeders"] as? Int == 2, "\(entries)")
        // Without the CA the certificate is refused, by scrape and by download alike.
        let untrusted = try Self.scrape(torrent)
        let refusal = untrusted.first?["error"] as? String ?? ""
        #expect(refusal.contains("certificate verify failed"), "\(untrusted)")

        let target = setup.root.appendingPathComponent("download")
        let result = try runPotluck(["download", "-q", "--verbose", torrent, "-o", target.path] + trust)
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(setup.data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("tracker \(https): started answered"), "\(result.error)")
        #expect(result.error.contains("tracker \(https): stopped answered"), "\(result.error)")

        let peer = try #require((seeders.ready?["peers"] as? [String])?.first)
        let refused = setup.root.appendingPathComponent("download-untrusted")
        // Seeding a moment: from the peer the download may end before the certificate store (loaded off
        // the reactor) lets the first announce go.
        let fallback = try runPotluck([
            "download", "-q", "--verbose", torrent, "-o", refused.path, "--peer", peer, "--seed",
            "--seed-time",
            "3s",
        ])
        #expect(fallback.status == 0, "\(fallback.error)")
        #expect(
            fallback.error.contains("certificate verify failed: self-signed certificate"), "\(fallback.error)"
        )
        #expect(Interop.sameContents(setup.data, refused.appendingPathComponent("payload")))
    }

    /// What `--verbose` must say for each kind of misbehaviour, over HTTP (tried first) and then UDP.
    static let expectedComplaints: [String: [String]] = [
        "garbage": ["started failed: malformed bencode", "ignored a datagram"],
        "oversized": ["body larger than 1048576 bytes", "not a multiple of 6"],
        "failure": ["tracker failure: this tracker refuses you politely"],
        "peers": ["5000 peers, limit 1000", "1200 peers, limit 1000"],
        "wrong-txn": ["ignored a datagram: transaction id"],
        "silent": [],
    ]

    @Test(arguments: ["garbage", "oversized", "failure", "peers", "wrong-txn", "silent"])
    func misbehavingTrackerIsReportedAndTheDownloadGoesOn(mode: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [2_500_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let bad = try harnessProcess([Interop.tool("bad_tracker.py"), mode])
        defer { bad.stop() }
        let http = try #require(bad.ready?["http"] as? String)
        let udp = try #require(bad.ready?["udp"] as? String)
        let torrent = try Self.create(data, trackers: [http, udp], name: "t.torrent")
        // A slow seeder, so the download outlasts the trackers' first answers.
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "1",
            "--upload-rate", "1000000",
        ])
        defer { seeder.stop() }
        let peer = try #require((seeder.ready?["peers"] as? [String])?.first)
        let target = root.appendingPathComponent("download")
        let started = Date()
        // No -q: the progress line (a plain line on a pipe) shows the tracker's state.
        let result = try runPotluck(["download", "--verbose", torrent, "-o", target.path, "--peer", peer])
        let seconds = Date().timeIntervalSince(started)
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        for complaint in Self.expectedComplaints[mode] ?? [] {
            #expect(result.error.contains(complaint), "\(mode): \(result.error)")
        }
        #expect(result.error.contains("tracker \(http): announcing started"), "\(result.error)")
        let progress = result.error.split(separator: "\n").filter { $0.hasPrefix("downloading ") }
        #expect(!progress.isEmpty, "\(result.error)")
        if mode != "silent" {
            #expect(progress.contains { $0.contains("tracker: error ") }, "\(progress)")
        }
        // No tracker ever answered, so exiting sends nothing and waits for nothing.
        #expect(!result.error.contains("announcing stopped"), "\(result.error)")
        #expect(seconds < 20, "a misbehaving tracker must not hold the download up (\(seconds) s)")
    }

    /// BEP 3's dictionary form lets a tracker name a peer by DNS name: Potluck resolves it off the
    /// reactor thread and connects. The seeders are reachable only by name (no --peer), and a name
    /// that does not resolve is dropped without holding anything up.
    @Test func peersNamedByDNSNameAreResolvedAndDownloadedFrom() throws {
        let (root, data) = try Interop.makePayload(sizes: [1_500_000, 700_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let bare = try Self.create(data, trackers: [], name: "bare.torrent")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", bare, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let ports = (seeders.ready?["peers"] as? [String] ?? []).compactMap { $0.split(separator: ":").last }
        try #require(ports.count == 2)
        let named = try harnessProcess(
            [Interop.tool("bad_tracker.py"), "named"] + ports.flatMap { ["--named-peer", "localhost:\($0)"] })
        defer { named.stop() }
        let http = try #require(named.ready?["http"] as? String)
        let torrent = try Self.create(data, trackers: [http], name: "t.torrent")
        let target = root.appendingPathComponent("download")
        let result = try runPotluck(["download", "-q", "--verbose", torrent, "-o", target.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("tracker \(http): started answered: 3 peers"), "\(result.error)")
    }

    /// Timeouts on the ring: a tracker that accepts (HTTP) or receives (UDP) and never answers is
    /// reported as timed out within the scrape's limit, not waited on for ever.
    @Test func silentTrackersTimeOut() throws {
        let (root, data) = try Interop.makePayload(sizes: [100_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let silent = try harnessProcess([Interop.tool("bad_tracker.py"), "silent"])
        defer { silent.stop() }
        let http = try #require(silent.ready?["http"] as? String)
        let udp = try #require(silent.ready?["udp"] as? String)
        let torrent = try Self.create(data, trackers: [http, udp], name: "t.torrent")
        let started = Date()
        let result = try runPotluck(["info", "--scrape", "--scrape-timeout", "2", "--json", torrent])
        let seconds = Date().timeIntervalSince(started)
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        let entries = object?["scrape"] as? [[String: Any]] ?? []
        #expect(entries.map { $0["tracker"] as? String } == [http, udp])
        #expect(
            (entries.first?["error"] as? String)?.contains("no answer to HTTP response from") == true,
            "\(entries)")
        #expect((entries.last?["error"] as? String)?.contains("no answer") == true, "\(entries)")
        #expect(seconds >= 1.5 && seconds < 6, "\(seconds) s")
    }

    @Test func noTrackersFlagLeavesTheTrackersAlone() throws {
        let (root, data) = try Interop.makePayload(sizes: [200_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let bad = try harnessProcess([Interop.tool("bad_tracker.py"), "failure"])
        defer { bad.stop() }
        let torrent = try Self.create(
            data, trackers: [try #require(bad.ready?["http"] as? String)], name: "t.torrent")
        let seeder = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "1",
        ])
        defer { seeder.stop() }
        let peer = try #require((seeder.ready?["peers"] as? [String])?.first)
        let target = root.appendingPathComponent("download")
        let result = try runPotluck([
            "download", "-q", "--verbose", "--no-trackers", torrent, "-o", target.path, "--peer", peer,
        ])
        #expect(result.status == 0, "\(result.error)")
        #expect(!result.error.contains("tracker"), "\(result.error)")
        // And without --peer (or the DHT, or local discovery) there is nobody to ask.
        let alone = try runPotluck([
            "download", "-q", "--no-trackers", "--no-dht", "--no-lsd", torrent, "-o", target.path + "2",
        ])
        #expect(alone.status == 1)
        #expect(alone.error.contains("no peers"), "\(alone.error)")
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago (bound, read, closed).
func unusedUDPPort() -> UInt16 {
    let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { Glibc.close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.bind(fd, $0, length)
            return getsockname(fd, $0, &length)
        }
    }
    return UInt16(bigEndian: address.sin_port)
}
