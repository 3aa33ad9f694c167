import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import OutboundHTTP
import Tracker

struct BenchSoak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract:
            "`potluck daemon` under churn, hostile peers and a full disk for --minutes; fails on a leak.",
        discussion: """
            Makes --torrents torrents of --size-mib MiB announced to an opentracker, each seeded by a \
            libtorrent seeder, and starts `potluck daemon` with its download folder on a tmpfs just large \
            enough for them. Then, until --minutes have passed: the daemon downloads each torrent; a \
            complete copy is compared byte for byte with the original, removed with its data and added \
            again; every second a libtorrent leecher joins (dialling the daemon) and, past four, the \
            oldest is killed mid-transfer; every 7 s the next hostile peer of a cycle starts (a liar \
            sending corrupt blocks, unrequested blocks, an oversized message — these announced to the \
            tracker and reached by a reannounce — and a leecher asking for too much, past the end, too \
            many blocks at once, or pieces the daemon lacks); once a minute a file fills the download \
            folder to ENOSPC for 10 s, then goes, and torrents stopped by the full disk are started \
            again. Every --sample-seconds it reads the daemon's RssAnon, descriptors, threads and \
            io_uring operations in flight (potluck_ring_operations_in_flight at /metrics). The slopes \
            of those over the second half are reported; from 10 minutes on, one over its limit fails \
            the run, as does a copy that differs, a daemon that exits, or an unclean stop. Needs root \
            (the tmpfs).
            """)

    @Option(help: "How long to run.")
    var minutes: Double = 30

    @Option(help: "Torrents the daemon keeps downloading, removing and adding again.")
    var torrents: Int = 3

    @Option(name: .customLong("size-mib"), help: "Size of each torrent, MiB.")
    var sizeMiB: Int = 16

    @Option(name: .customLong("sample-seconds"), help: "Seconds between two readings of the daemon.")
    var sampleSeconds: Double = 5

    @OptionGroup var placement: BenchPlacement

    func validate() throws {
        guard minutes >= 0.5 && minutes <= 24 * 60 else {
            throw ValidationError("--minutes must be in 0.5...1440")
        }
        guard (1...8).contains(torrents) else { throw ValidationError("--torrents must be in 1...8") }
        guard (1...256).contains(sizeMiB) else { throw ValidationError("--size-mib must be in 1...256") }
        guard sampleSeconds >= 1 else { throw ValidationError("--sample-seconds must be at least 1") }
    }

    func run() throws {
        let run = try placement.startRun("bench soak", needsRoot: true)
        defer { run.cleanup() }
        let soak = try SoakRun(run: run, torrents: torrents, bytes: sizeMiB << 20)
        defer { soak.tearDown() }
        let report = try soak.run(seconds: minutes * 60, sampleSeconds: sampleSeconds)
        print(report.rendered)
        if let json = placement.json {
            let data = try JSONSerialization.data(
                withJSONObject: report.json, options: [.prettyPrinted, .sortedKeys])
            if !FileManager.default.createFile(atPath: json, contents: data) {
                printError("potluck: cannot write \(json)")
            }
        }
        if !report.ok { throw ExitCode(1) }
    }
}

/// One reading of the daemon.
struct SoakSample {
    let seconds: Double
    let values: [SoakSeries: Double]
}

/// What the soak watches for growth, with the slope (per minute, over the run's second half) that
/// counts as growing without bound.
enum SoakSeries: String, CaseIterable {
    case rssAnonMiB = "RssAnon MiB"
    case descriptors
    case threads
    case ringOperations = "ring operations in flight"

    var limitPerMinute: Double {
        switch self {
        case .rssAnonMiB: 0.5
        case .descriptors: 1
        case .threads: 0.2
        case .ringOperations: 2
        }
    }

    /// Least-squares slope per minute of `points` (seconds, value).
    static func slopePerMinute(_ points: [(Double, Double)]) -> Double {
        guard points.count >= 2 else { return 0 }
        let count = Double(points.count)
        let meanX = points.map(\.0).reduce(0, +) / count
        let meanY = points.map(\.1).reduce(0, +) / count
        let covariance = points.map { ($0.0 - meanX) * ($0.1 - meanY) }.reduce(0, +)
        let variance = points.map { ($0.0 - meanX) * ($0.0 - meanX) }.reduce(0, +)
        return variance > 0 ? covariance / variance * 60 : 0
    }
}

/// The soak's world: the payload, the tracker, the seeders, the tmpfs and the daemon; `run` drives
/// the churn and the faults and takes the readings.
final class SoakRun {
    private let run: BenchRun
    private let torrentPaths: [String]
    private let infoHashes: [String]
    private let sourceData: String
    private let downloads: String
    private let trackerURL: String
    private let daemonPeer: String
    private let metricsURL: TrackerURL
    private let rpc: TransmissionRPCClient
    private var daemon: ChildProcess?
    private var seeders: [ChildProcess] = []
    private var mounted = false

    /// Hostile peers in the order they take turns.
    static let hostileModes = [
        "corrupt", "request-flood", "unrequested", "request-range", "oversized", "request-oversized",
        "request-lacking",
    ]

    init(run: BenchRun, torrents: Int, bytes: Int) throws {
        self.run = run
        let set = run.workspace + "/set"
        let trackerPort = SwarmFixture.freePort(on: "127.0.0.1")
        trackerURL = "http://127.0.0.1:\(trackerPort)/announce"
        printError("making \(torrents) torrents of \(Format.bytes(bytes))...")
        let made = try ExternalCommand.run(
            "/usr/bin/python3",
            [
                run.harness + "/many_torrents.py", set, "--count", "\(torrents)", "--min-bytes", "\(bytes)",
                "--max-bytes", "\(bytes)", "--piece-bytes", "\(256 << 10)", "--tracker", trackerURL,
            ], timeoutSeconds: 600)
        let line = made.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
        guard made.status == 0,
            let info = line.flatMap({
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }),
            let hashes = info["hashes"] as? [String], hashes.count == torrents
        else { throw ExternalCommand.Failure(description: "many_torrents.py failed: \(made.standardOutput)") }
        infoHashes = hashes
        sourceData = set + "/data"
        torrentPaths = (0..<torrents).map { String(format: "\(set)/torrents/t%05d.torrent", $0) }

        // The download folder holds the torrents and half of one more: a filler takes the rest.
        downloads = run.workspace + "/downloads"
        mkdir(downloads, 0o700)
        let size = torrents * bytes + bytes / 2
        let mount = try ExternalCommand.run(
            "/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "potluck-soak", downloads],
            mergeStandardError: true)
        guard mount.status == 0 else {
            throw ExternalCommand.Failure(description: "cannot mount a tmpfs: \(mount.standardOutput)")
        }
        mounted = true

        let tracker = try run.python(
            "tracker.py",
            ["start", "--http-port", "\(trackerPort)", "--udp-port", "0", "--whitelist"] + hashes,
            label: "tracker")
        guard tracker.waitForLog(timeoutSeconds: 60, { _ in tracker.firstJSON }) != nil else {
            throw ExternalCommand.Failure(
                description: "opentracker did not start: \(tracker.log.suffix(500))")
        }
        for path in torrentPaths {
            let seeder = try run.python(
                "lt.py", ["seed", path, sourceData, "--bind", "127.0.0.1"], label: "libtorrent-seed")
            guard seeder.waitForLog(timeoutSeconds: 120, { _ in seeder.firstJSON }) != nil else {
                throw ExternalCommand.Failure(
                    description: "a libtorrent seeder did not start: \(seeder.log.suffix(500))")
            }
            seeders.append(seeder)
        }

        let rpcAddress = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        daemonPeer = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        metricsURL = try TrackerURL("http://\(rpcAddress)/metrics")
        rpc = try TransmissionRPCClient(address: rpcAddress)
        daemon = try run.spawn(
            ExternalCommand.currentExecutable(),
            [
                "daemon", "--state", run.workspace + "/state", "--download-dir", downloads, "--rpc",
                rpcAddress,
                "--listen", daemonPeer, "--no-dht", "--no-lsd", "--log-level", "warning",
            ], label: "potluck-daemon")
        let deadline = ContinuousClock.now + .seconds(60)
        while (try? rpc.call("session-get", timeoutSeconds: 5)) == nil {
            guard ContinuousClock.now < deadline, daemon?.reap() == false else {
                throw ExternalCommand.Failure(
                    description: "the daemon did not answer: \(daemon?.log.suffix(500) ?? "")")
            }
            usleep(50_000)
        }
    }

    /// What happened, counted as it happens.
    private struct Tally {
        var identicalCopies = 0
        var differingCopies: [String] = []
        var leechersJoined = 0
        var hostile: [String: Int] = [:]
        var fills = 0
        var startedAgain = 0
        var samples: [SoakSample] = []
        var daemonExit: String?
        var stopSeconds: Double?
    }

    func run(seconds: Double, sampleSeconds: Double) throws -> SoakReport {
        var tally = Tally()
        for path in torrentPaths { try add(path) }
        let started = ContinuousClock.now
        func elapsed() -> Double { CommandSupport.seconds(ContinuousClock.now - started) }
        var leechers: [(process: ChildProcess, folder: String)] = []
        var hostilePeer: ChildProcess?
        var filler: (path: String, until: Double)?
        var nextSample = 0.0
        var nextHostile = 3.0
        var nextFill = 30.0
        var readdAt: [Int: Double] = [:]
        var nextReport = 30.0
        var second = 0
        while elapsed() < seconds {
            run.stopIfInterrupted()
            let now = elapsed()
            if let process = daemon, process.reap() {
                tally.daemonExit = "status \(process.exitStatus ?? -1): \(ManySeeder.lastLines(process))"
                break
            }
            // Churn: one leecher joins each second; past four the oldest leaves mid-transfer.
            let index = second % torrentPaths.count
            let folder = run.workspace + "/churn-\(second)"
            leechers.append(
                (
                    try run.python(
                        "lt.py",
                        ["download", torrentPaths[index], folder, "--peer", daemonPeer, "--timeout", "600"],
                        label: "churn"), folder
                ))
            tally.leechersJoined += 1
            if leechers.count > 4 {
                let leaving = leechers.removeFirst()
                leaving.process.stop(graceSeconds: 0)
                _ = ExternalCommand.removeTree(leaving.folder)
            }
            second += 1
            if now >= nextHostile {
                hostilePeer?.stop(graceSeconds: 1)
                hostilePeer = try startHostile(turn: tally.hostile.values.reduce(0, +), tally: &tally)
                nextHostile = now + 7
            }
            if filler == nil && now >= nextFill {
                filler = (fill(), now + 10)
                tally.fills += 1
                nextFill = now + 60
            } else if let current = filler, now >= current.until {
                unlink(current.path)
                filler = nil
                tally.startedAgain += startStoppedByFullDisk()
            }
            try cycleCompleteTorrents(now: now, readdAt: &readdAt, tally: &tally)
            if now >= nextSample {
                if let sample = sample(at: now) { tally.samples.append(sample) }
                nextSample = now + sampleSeconds
            }
            if now >= nextReport {
                let rss = tally.samples.last?.values[.rssAnonMiB].map { Format.fixed($0, 1) } ?? "?"
                printError(
                    "soak: \(Int(now)) of \(Int(seconds)) s, \(tally.identicalCopies) copies verified, "
                        + "\(tally.hostile.values.reduce(0, +)) hostile peers, \(tally.fills) fills, RssAnon \(rss) MiB"
                )
                nextReport = now + 30
            }
            usleep(1_000_000)
        }
        for leecher in leechers {
            leecher.process.stop(graceSeconds: 0)
            _ = ExternalCommand.removeTree(leecher.folder)
        }
        hostilePeer?.stop(graceSeconds: 1)
        if let filler { unlink(filler.path) }
        if tally.daemonExit == nil, let process = daemon {
            let stopping = ContinuousClock.now
            kill(process.pid, SIGTERM)
            while !process.reap() && ContinuousClock.now - stopping < .seconds(30) { usleep(20_000) }
            if process.exitStatus == 0 {
                tally.stopSeconds = CommandSupport.seconds(ContinuousClock.now - stopping)
            }
            process.stop(graceSeconds: 0)
        }
        return SoakReport(
            seconds: elapsed(), torrents: torrentPaths.count, identicalCopies: tally.identicalCopies,
            differingCopies: tally.differingCopies, leechersJoined: tally.leechersJoined,
            hostile: tally.hostile,
            fills: tally.fills, startedAgain: tally.startedAgain,
            samples: tally.samples, daemonExit: tally.daemonExit, stopSeconds: tally.stopSeconds)
    }

    private func add(_ path: String) throws {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw ExternalCommand.Failure(description: "cannot read \(path)")
        }
        _ = try rpc.call("torrent-add", ["metainfo": bytes.base64EncodedString(), "download-dir": downloads])
    }

    /// The next hostile peer of the cycle: a lying seeder is announced to the tracker and the daemon
    /// asked to announce at once; a hostile leecher dials the daemon itself.
    private func startHostile(turn: Int, tally: inout Tally) throws -> ChildProcess? {
        let mode = Self.hostileModes[turn % Self.hostileModes.count]
        let index = turn % torrentPaths.count
        tally.hostile[mode, default: 0] += 1
        if mode.hasPrefix("request-") {
            return try run.python(
                "hostile_peer.py",
                [torrentPaths[index], mode, "--connect", daemonPeer, "--count", "2000", "--piece", "0"],
                label: "hostile-\(mode)")
        }
        let peer = try run.python(
            "hostile_peer.py", [torrentPaths[index], mode, "--bind", "127.0.0.1"], label: "hostile-\(mode)")
        guard let address = peer.waitForLog(timeoutSeconds: 10, { _ in peer.firstJSON?["peer"] as? String }),
            let port = address.split(separator: ":").last
        else { return peer }
        _ = try? ExternalCommand.run(
            "/usr/bin/python3",
            [
                run.harness + "/tracker.py", "announce", trackerURL, "--infohash", infoHashes[index],
                "--port",
                String(port), "--source", "127.0.0.1", "--left", "0", "--event", "started",
            ])
        _ = try? rpc.call("torrent-reannounce", ["ids": [infoHashes[index]]])
        return peer
    }

    /// Fills the download folder until a write fails (ENOSPC); returns the filler's path.
    private func fill() -> String {
        let path = downloads + "/.soak-filler"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return path }
        let chunk = [UInt8](repeating: 0xA5, count: 1 << 20)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        close(fd)
        return path
    }

    /// Starts every torrent that an error stopped (the full disk); returns how many.
    private func startStoppedByFullDisk() -> Int {
        guard let reply = try? rpc.call("torrent-get", ["fields": ["id", "error", "status"]]),
            let list = reply.arguments["torrents"] as? [[String: Any]]
        else { return 0 }
        let stopped = list.filter { ($0["error"] as? Int ?? 0) != 0 && ($0["status"] as? Int) == 0 }
            .compactMap { $0["id"] as? Int }
        if !stopped.isEmpty { _ = try? rpc.call("torrent-start", ["ids": stopped]) }
        return stopped.count
    }

    /// Compares each complete copy with the original, then removes it with its data; it is added
    /// again two seconds later.
    private func cycleCompleteTorrents(now: Double, readdAt: inout [Int: Double], tally: inout Tally) throws {
        for (index, due) in readdAt where now >= due {
            try add(torrentPaths[index])
            readdAt[index] = nil
        }
        guard
            let reply = try? rpc.call(
                "torrent-get", ["fields": ["id", "hashString", "percentDone", "name"]]),
            let list = reply.arguments["torrents"] as? [[String: Any]]
        else { return }
        for torrent in list where (torrent["percentDone"] as? Double ?? 0) >= 1 {
            guard let id = torrent["id"] as? Int, let hash = torrent["hashString"] as? String,
                let index = infoHashes.firstIndex(of: hash), let name = torrent["name"] as? String
            else { continue }
            let copy = downloads + "/" + name
            if FileManager.default.contentsEqual(atPath: copy, andPath: sourceData + "/" + name) {
                tally.identicalCopies += 1
            } else {
                tally.differingCopies.append(name)
            }
            _ = try rpc.call("torrent-remove", ["ids": [id], "delete-local-data": true])
            readdAt[index] = now + 2
        }
    }

    private func sample(at seconds: Double) -> SoakSample? {
        guard let pid = daemon?.pid, let rss = ProcFS.anonymousResidentKiB(pid),
            let descriptors = ProcFS.descriptors(pid), let threads = ProcFS.threads(pid)
        else { return nil }
        var values: [SoakSeries: Double] = [
            .rssAnonMiB: Double(rss) / 1024, .descriptors: Double(descriptors), .threads: Double(threads),
        ]
        if let metrics = try? OutboundHTTP.sendWaiting(.init(url: metricsURL), timeoutSeconds: 5),
            let line = String(decoding: metrics.body, as: UTF8.self).split(separator: "\n").first(where: {
                $0.hasPrefix("potluck_ring_operations_in_flight ")
            }),
            let value = line.split(separator: " ").last.flatMap({ Double($0) })
        {
            values[.ringOperations] = value
        }
        return SoakSample(seconds: seconds, values: values)
    }

    /// Stops what is left and unmounts the tmpfs (before the workspace is removed).
    func tearDown() {
        daemon?.stop(graceSeconds: 5)
        for seeder in seeders { seeder.stop(graceSeconds: 2) }
        if mounted { _ = try? ExternalCommand.run("/bin/umount", ["-l", downloads]) }
        mounted = false
    }
}

/// The soak's findings and its verdict.
struct SoakReport {
    let seconds: Double
    let torrents: Int
    let identicalCopies: Int
    let differingCopies: [String]
    let leechersJoined: Int
    let hostile: [String: Int]
    let fills: Int
    let startedAgain: Int
    let samples: [SoakSample]
    let daemonExit: String?
    let stopSeconds: Double?

    /// Shorter runs report slopes but are not judged by them: a warm-up is not a leak.
    static let judgedFromSeconds = 600.0

    struct Growth {
        let series: SoakSeries
        let first: Double
        let last: Double
        let max: Double
        let slopePerMinute: Double
        let tooSteep: Bool
    }

    var growth: [Growth] {
        let secondHalf = samples.filter { $0.seconds >= seconds / 2 }
        return SoakSeries.allCases.compactMap { series in
            let all = samples.compactMap { sample in sample.values[series].map { (sample.seconds, $0) } }
            guard let first = all.first?.1, let last = all.last?.1 else { return nil }
            let slope = SoakSeries.slopePerMinute(
                secondHalf.compactMap { sample in sample.values[series].map { (sample.seconds, $0) } })
            return Growth(
                series: series, first: first, last: last, max: all.map(\.1).max() ?? last,
                slopePerMinute: slope,
                tooSteep: seconds >= Self.judgedFromSeconds && slope > series.limitPerMinute)
        }
    }

    var problems: [String] {
        var found: [String] = []
        if let daemonExit { found.append("the daemon exited: \(daemonExit)") }
        if !differingCopies.isEmpty { found.append("copies differ from the original: \(differingCopies)") }
        if identicalCopies == 0 { found.append("no copy was completed") }
        if daemonExit == nil && stopSeconds == nil {
            found.append("the daemon did not stop cleanly on SIGTERM")
        }
        for item in growth where item.tooSteep {
            found.append(
                "\(item.series.rawValue) grows \(Format.fixed(item.slopePerMinute, 2)) a minute "
                    + "(limit \(Format.fixed(item.series.limitPerMinute, 2)))")
        }
        return found
    }

    var ok: Bool { problems.isEmpty }

    var rendered: String {
        var lines = [
            "Soak: \(Format.fixed(seconds / 60, 1)) min, \(torrents) torrents, \(samples.count) readings",
            "",
            "- copies verified byte for byte, removed and added again: \(identicalCopies) (differing: \(differingCopies.count))",
            "- churn: \(leechersJoined) libtorrent leechers joined, each killed after about 4 s",
            "- hostile peers: "
                + SoakRun.hostileModes.map { "\($0) \(hostile[$0, default: 0])" }.joined(separator: ", "),
            "- download folder filled to ENOSPC \(fills) times; torrents stopped by it and started again: \(startedAgain)",
            "- SIGTERM to exit: " + (stopSeconds.map { Format.fixed($0, 2) + " s" } ?? "not clean"),
            "",
        ]
        var table = Table("series", "first", "last", "max", "slope/min (2nd half)", "limit", "verdict")
        for item in growth {
            table.add(
                item.series.rawValue, Format.fixed(item.first, 1), Format.fixed(item.last, 1),
                Format.fixed(item.max, 1), Format.fixed(item.slopePerMinute, 3),
                Format.fixed(item.series.limitPerMinute, 2),
                seconds < Self.judgedFromSeconds ? "not judged (< 10 min)" : item.tooSteep ? "GROWS" : "ok")
        }
        lines.append(table.rendered)
        lines.append("")
        lines.append(
            ok ? "result: ok" : "result: FAILED\n" + problems.map { "  - \($0)" }.joined(separator: "\n"))
        return lines.joined(separator: "\n")
    }

    var json: [String: Any] {
        [
            "benchmark": "soak", "seconds": seconds, "torrents": torrents,
            "identical_copies": identicalCopies,
            "differing_copies": differingCopies, "leechers_joined": leechersJoined, "hostile": hostile,
            "fills": fills, "started_again": startedAgain,
            "stop_seconds": stopSeconds ?? NSNull(), "daemon_exit": daemonExit ?? NSNull(), "ok": ok,
            "problems": problems,
            "growth": growth.map {
                [
                    "series": $0.series.rawValue, "first": $0.first, "last": $0.last, "max": $0.max,
                    "slope_per_minute": $0.slopePerMinute, "limit_per_minute": $0.series.limitPerMinute,
                    "too_steep": $0.tooSteep,
                ] as [String: Any]
            },
            "samples": samples.map { sample in
                ["seconds": sample.seconds].merging(
                    sample.values.map { ($0.key.rawValue, $0.value) }, uniquingKeysWith: { first, _ in first }
                )
            },
        ]
    }
}
