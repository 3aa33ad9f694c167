import Foundation
import Metainfo
import Testing
import URing

@testable import Engine

/// A seed nobody asks for leaves its reactor and a stand-in holds its place: a peer that connects
/// wakes it, its totals survive the rest, commands reach it, and a seed that announces to trackers
/// stays awake.
@Suite struct RestingTests {
    static func engine(restAfterSeconds: Int?) throws -> Engine {
        var options = EngineOptions()
        options.reactors = 1
        options.listenAddress = SocketAddress("127.0.0.1:0")
        options.restIdleSeedsAfterSeconds = restAfterSeconds
        return try Engine(options: options)
    }

    static func download(_ metainfo: Metainfo, from seeder: Engine, into directory: URL) throws {
        let leecher = try engine(restAfterSeconds: nil)
        defer { leecher.shutdown() }
        let port = try #require(seeder.boundAddress).port
        let id = try leecher.add(
            metainfo,
            options: DownloadOptions(
                downloadDirectory: directory.path, peers: [SocketAddress("127.0.0.1:\(port)")!]))
        #expect(EngineTests.eventually { leecher.snapshot(id)?.isLive == false })
        #expect(leecher.snapshot(id)?.activity == .finished)
    }

    @Test func anIdleSeedRestsAPeerWakesItAndItsTotalsSurvive() throws {
        let seedDirectory = try EngineTests.temporaryDirectory("rest-seed")
        let leechDirectory = try EngineTests.temporaryDirectory("rest-leech")
        defer {
            try? FileManager.default.removeItem(at: seedDirectory)
            try? FileManager.default.removeItem(at: leechDirectory)
        }
        let torrents = try (0..<3).map {
            try EngineTests.makeTorrent(
                named: "r\($0).bin", size: 60_000 + 5_000 * $0, seed: UInt8(70 + $0), in: seedDirectory)
        }
        let seeder = try Self.engine(restAfterSeconds: 1)
        defer { seeder.shutdown() }
        let ids = try torrents.map {
            try seeder.add($0, options: ManyTorrentsTests.seedingOptions(seedDirectory))
        }
        #expect(
            EngineTests.eventually { seeder.summary().resting == 3 }, "\(seeder.snapshots().map(\.activity))")
        for snapshot in seeder.snapshots() {
            #expect(snapshot.isResting && snapshot.isLive && snapshot.activity == .seeding)
            #expect(snapshot.status?.connectedPeers == 0)
        }
        #expect(seeder.summary().live == 3)

        // A peer arrives: the torrent wakes, serves it, and rests again once it has gone.
        try Self.download(torrents[0], from: seeder, into: leechDirectory)
        let name = torrents[0].name
        #expect(
            FileManager.default.contentsEqual(
                atPath: seedDirectory.appendingPathComponent(name).path,
                andPath: leechDirectory.appendingPathComponent(name).path))
        #expect(EngineTests.eventually { seeder.snapshot(ids[0])?.isResting == true })
        let size = Int64(torrents[0].totalLength)
        #expect(seeder.snapshot(ids[0])?.status?.uploadedPayloadBytes == size)

        // Again: what the first visit uploaded is still counted.
        try FileManager.default.removeItem(at: leechDirectory.appendingPathComponent(name))
        try FileManager.default.removeItem(
            at: leechDirectory.appendingPathComponent(".\(torrents[0].wireInfoHash.hex).potluck-resume"))
        try Self.download(torrents[0], from: seeder, into: leechDirectory)
        #expect(EngineTests.eventually { seeder.snapshot(ids[0])?.status?.uploadedPayloadBytes == 2 * size })
        #expect(EngineTests.eventually { seeder.snapshot(ids[0])?.isResting == true })

        // A command that needs a session wakes it (and it rests again); pause and remove end it.
        try seeder.setRates(ids[1], uploadBytesPerSecond: 1 << 20, downloadBytesPerSecond: 0)
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isResting == false })
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isResting == true })
        try seeder.pause(ids[1])
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isLive == false })
        #expect(seeder.snapshot(ids[1])?.activity == .paused)
        #expect(seeder.snapshot(ids[1])?.isResting == false)
        #expect(seeder.snapshot(ids[1])?.ended.map { (try? $0.get()) == .interrupted } == true)
        try seeder.resume(ids[1])
        #expect(EngineTests.eventually { seeder.snapshot(ids[1])?.isResting == true })
        try seeder.remove(ids[2])
        #expect(EngineTests.eventually { seeder.snapshot(ids[2]) == nil })
        #expect(seeder.summary().resting == 2 && seeder.summary().live == 2)
    }

    @Test func aRestingSeedWakesForItsTrackersNextAnnounceAsTheSamePeer() throws {
        let directory = try EngineTests.temporaryDirectory("rest-tracker")
        defer { try? FileManager.default.removeItem(at: directory) }
        // 60 s: the shortest interval a tracker may set (`TrackerLimits`), so this test takes a minute.
        let tracker = try TinyHTTPTracker(intervalSeconds: 60)
        defer { tracker.stop() }
        let metainfo = try EngineTests.makeTorrent(named: "t.bin", size: 40_000, seed: 83, in: directory)
        let seeder = try Self.engine(restAfterSeconds: 1)
        defer { seeder.shutdown() }
        var options = ManyTorrentsTests.seedingOptions(directory)
        options.trackers = [["http://127.0.0.1:\(tracker.port)/announce"]]
        let id = try seeder.add(metainfo, options: options)
        #expect(EngineTests.eventually { seeder.snapshot(id)?.isResting == true }, "it rests after `started`")
        #expect(tracker.announces.count == 1)
        // A client's reannounce wakes it to announce now (the tracker set no `min interval`).
        try seeder.reannounce(id)
        #expect(EngineTests.eventually { tracker.announces.count == 2 })
        #expect(EngineTests.eventually { seeder.snapshot(id)?.isResting == true })
        // Woken when the next announce is due, it announces (no `started` again) and rests once more.
        #expect(EngineTests.eventually(80) { tracker.announces.count >= 3 })
        #expect(EngineTests.eventually { seeder.snapshot(id)?.isResting == true })
        let announces = tracker.announces
        #expect(announces.map(\.event) == ["started"] + Array(repeating: "", count: announces.count - 1))
        #expect(Set(announces.map(\.peerID)).count == 1, "the same peer id each time")
        #expect(Set(announces.map(\.key)).count == 1, "the same key each time")
        let statuses = seeder.trackerStatus(of: id)
        #expect(statuses.first?.lastAnnounceSucceeded == true, "\(statuses)")
    }

    @Test func aSeedWhoseTrackerNeverAnsweredOrWithoutTheOptionStaysAwake() throws {
        let directory = try EngineTests.temporaryDirectory("awake")
        defer { try? FileManager.default.removeItem(at: directory) }
        let announcing = try EngineTests.makeTorrent(named: "a.bin", size: 40_000, seed: 81, in: directory)
        let plain = try EngineTests.makeTorrent(named: "p.bin", size: 40_000, seed: 82, in: directory)
        let seeder = try Self.engine(restAfterSeconds: 1)
        defer { seeder.shutdown() }
        var options = ManyTorrentsTests.seedingOptions(directory)
        options.trackers = [["http://127.0.0.1:9/announce"]]
        let id = try seeder.add(announcing, options: options)
        let never = try Self.engine(restAfterSeconds: nil)
        defer { never.shutdown() }
        let other = try never.add(plain, options: ManyTorrentsTests.seedingOptions(directory))
        #expect(EngineTests.eventually { seeder.snapshot(id)?.activity == .seeding })
        #expect(EngineTests.eventually { never.snapshot(other)?.activity == .seeding })
        sleep(3)
        #expect(seeder.snapshot(id)?.isResting == false, "`started` is still to be answered")
        #expect(never.snapshot(other)?.isResting == false)
    }
}

/// An HTTP tracker on 127.0.0.1 that answers every announce with no peers and `interval`, and keeps
/// what each announce said. `answersStopped: false` leaves `stopped` announces unanswered (until `stop`),
/// which holds a stopping torrent in that stage.
final class TinyHTTPTracker: @unchecked Sendable {
    struct Announce: Equatable {
        var event: String
        var peerID: String
        var key: String
    }

    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var received: [Announce] = []
    private var thread: Thread?
    private var unanswered: [Int32] = []
    private var isStopped = false
    /// Signalled when the accepting thread has returned: only then may the listener's number go.
    private let threadEnded = DispatchSemaphore(value: 0)

    init(intervalSeconds: Int, answersStopped: Bool = true) throws {
        let (fd, port) = try loopbackSocket(SOCK_STREAM)
        guard listen(fd, 16) == 0 else {
            close(fd)
            throw FakeTrackerError.cannotBind
        }
        listener = fd
        self.port = port
        let body = Array("d8:intervali\(intervalSeconds)e5:peers0:e".utf8)
        thread = Thread { [self] in
            defer { threadEnded.signal() }
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                var request: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !request.ends(with: Array("\r\n\r\n".utf8)) {
                    let count = recv(client, &buffer, buffer.count, 0)
                    guard count > 0 else { break }
                    request += buffer[..<count]
                }
                let announce = record(String(decoding: request, as: UTF8.self))
                if !answersStopped && announce?.event == "stopped" {
                    lock.withLock { unanswered.append(client) }
                    continue
                }
                let reply =
                    Array(
                        "HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
                    + body
                _ = send(client, reply, reply.count, Int32(MSG_NOSIGNAL))
                close(client)
            }
        }
        thread?.start()
    }

    var announces: [Announce] { lock.withLock { received } }

    /// Closes the listener and the unanswered connections, once: a second close of a number another
    /// test's socket or pipe has taken since would close that instead (it did in CI).
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { isStopped = true }
            return !isStopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        threadEnded.wait()
        close(listener)
        for client in lock.withLock({ unanswered }) { close(client) }
    }

    @discardableResult
    private func record(_ request: String) -> Announce? {
        // Scrapes (`/scrape?`) are answered but not kept.
        guard let line = request.split(separator: "\r\n").first, line.contains("/announce?"),
            let query = line.split(separator: "?").dropFirst().first
        else { return nil }
        var fields: [String: String] = [:]
        for pair in query.split(separator: " ").first?.split(separator: "&") ?? [] {
            let parts = pair.split(separator: "=", maxSplits: 1)
            fields[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let announce = Announce(
            event: fields["event"] ?? "", peerID: fields["peer_id"] ?? "", key: fields["key"] ?? "")
        lock.withLock { received.append(announce) }
        return announce
    }
}
