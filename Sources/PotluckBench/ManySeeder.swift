import CommandSupport
import Foundation
import Glibc

/// The torrents many_torrents.py made: FOLDER/torrents/tNNNNN.torrent, their data in FOLDER/data.
struct ManyTorrents {
    let folder: String
    let count: Int
    var torrents: String { folder + "/torrents" }
    var data: String { folder + "/data" }

    func name(_ index: Int) -> String {
        let digits = String(index)
        return "t" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    func torrentPath(_ name: String) -> String { torrents + "/" + name + ".torrent" }

    /// Runs many_torrents.py: `count` torrents of 16-64 KiB (or `bytes` each, in `pieceBytes` pieces).
    func make(harness: String, bytes: Int? = nil, pieceBytes: Int? = nil) throws {
        let sizes =
            (bytes.map { ["--min-bytes", "\($0)", "--max-bytes", "\($0)"] } ?? [])
            + (pieceBytes.map { ["--piece-bytes", "\($0)"] } ?? [])
        let made = try ExternalCommand.run(
            "/usr/bin/python3", [harness + "/many_torrents.py", folder, "--count", "\(count)"] + sizes,
            timeoutSeconds: 3600, mergeStandardError: true)
        guard made.status == 0 else {
            throw ExternalCommand.Failure(
                description: "many_torrents.py failed: \(made.standardOutput.suffix(400))")
        }
    }
}

/// A client that holds every torrent of a set in one process.
protocol ManyClient: AnyObject {
    /// Where leechers reach it.
    var peer: String { get }
    /// The address leechers must connect from, when loopback will not do.
    var leecherBind: String? { get }
    /// How often `seedingCount` may be asked without loading the client.
    var pollMicroseconds: UInt32 { get }
    /// Starts its process holding every torrent (the first time, none of them checked yet).
    func launch() throws -> ChildProcess
    /// Torrents verified and seeding now.
    func seedingCount() -> Int
    /// Seconds from the latest start until its RPC answered, for clients whose RPC is timed.
    var answeredSeconds: Double? { get }
}

extension ManyClient {
    var answeredSeconds: Double? { nil }
}

/// Threads, anonymous memory, descriptors and CPU of a client that has been idle for a while.
struct IdleReadings {
    let threads: Int
    let anonymousKiB: Int
    let descriptors: Int
    let cpuSecondsPer10s: Double

    var json: [String: Any] {
        [
            "threads": threads, "rss_anon_kib": anonymousKiB, "descriptors": descriptors,
            "idle_cpu_seconds_per_10s": cpuSecondsPer10s,
        ]
    }
}

/// One clean restart: how long the stop took and how soon the client served again.
struct RestartTiming {
    let torrent: String
    /// Seconds the clean stop before it took; nil when the client had to be killed.
    let stopSeconds: Double?
    /// Seconds from the client's start until the leecher had the torrent; nil when it did not.
    let serveSeconds: Double?
    let allSeedingSeconds: Double?
    /// Seconds from the client's start until its RPC answered, when that is timed.
    let answerSeconds: Double?

    /// Seconds until the client served the leecher and (when timed) answered its RPC.
    var servingSeconds: Double? {
        guard let serveSeconds else { return nil }
        return max(serveSeconds, answerSeconds ?? 0)
    }

    var json: [String: Any] {
        var row: [String: Any] = [
            "torrent": torrent, "stop_seconds": stopSeconds ?? NSNull(),
            "serve_seconds": serveSeconds ?? NSNull(), "all_seeding_seconds": allSeedingSeconds ?? NSNull(),
        ]
        if let answerSeconds {
            row["rpc_answer_seconds"] = answerSeconds
            row["serving_seconds"] = servingSeconds ?? NSNull()
        }
        return row
    }
}

/// What `bench many` and `bench daemon` measure of a client from its first start through its restarts.
struct SeederLife {
    var firstStartSeconds: Double?
    /// The most descriptors it held during its first start (sampled).
    var peakDescriptors = 0
    /// Whether a leecher got a random torrent after the first start.
    var firstLeecherServed: Bool?
    var afterFirstStart: IdleReadings?
    var restarts: [RestartTiming] = []
    var afterRestart: IdleReadings?

    /// Whether every leecher was served.
    var served: Bool { firstLeecherServed == true && restarts.allSatisfy { $0.serveSeconds != nil } }

    /// The median over the restarts of `value`; nil if any restart lacks it.
    func median(_ value: (RestartTiming) -> Double?) -> Double? {
        let values = restarts.compactMap(value)
        return values.count < restarts.count ? nil : CommandSupport.median(values)
    }

    var json: [String: Any] {
        [
            "first_start_seconds": firstStartSeconds ?? NSNull(),
            "leecher_after_first_start": firstLeecherServed ?? NSNull(),
            "first_start_peak_descriptors": peakDescriptors,
            "after_first_start": afterFirstStart?.json ?? NSNull(), "restarts": restarts.map(\.json),
            "restart_to_serve_median_seconds": median(\.serveSeconds) ?? NSNull(),
            "after_restart": afterRestart?.json ?? NSNull(),
        ]
    }
}

/// A client's process as `bench many` and `bench daemon` start, stop and time it, with the libtorrent
/// leechers that check it serves.
final class ManySeeder {
    let client: ManyClient
    let run: BenchRun
    let set: ManyTorrents
    private(set) var process: ChildProcess?

    /// Seconds a restarted client may take to serve a torrent.
    static let restartTimeoutSeconds = 300.0
    init(_ client: ManyClient, run: BenchRun, set: ManyTorrents) {
        self.client = client
        self.run = run
        self.set = set
    }

    func start() throws -> ChildProcess {
        let process = try client.launch()
        self.process = process
        return process
    }

    /// Stops the client cleanly (SIGTERM); the seconds it took, or nil when it had to be killed.
    @discardableResult
    func stop() -> Double? {
        guard let process else { return nil }
        self.process = nil
        let began = ContinuousClock.now
        process.stop(graceSeconds: 300)
        run.release(process)
        return process.exitStatus == 128 + SIGKILL ? nil : seconds(ContinuousClock.now - began)
    }

    /// Seconds from the process's start until the client says `expected` torrents are seeding; the
    /// most descriptors it held meanwhile (sampled twice a second: listing thousands costs).
    func waitUntilAllSeeding(
        _ process: ChildProcess, expected: Int, timeoutSeconds: Double, peakDescriptors: inout Int
    ) throws -> Double {
        var reported = 0.0
        var sampled = -1.0
        while true {
            let count = client.seedingCount()
            let elapsed = seconds(ContinuousClock.now - process.started)
            if count >= expected { return elapsed }
            if elapsed - sampled >= 0.5 {
                sampled = elapsed
                peakDescriptors = max(peakDescriptors, ProcFS.descriptors(process.pid) ?? 0)
            }
            if process.reap() {
                throw ExternalCommand.Failure(
                    description: "it exited (status \(process.exitStatus ?? -1)) with \(count) of "
                        + "\(expected) torrents seeding, after holding up to \(peakDescriptors) "
                        + "descriptors: \(Self.lastLines(process))")
            }
            if elapsed > timeoutSeconds {
                throw ExternalCommand.Failure(
                    description: "\(count) of \(expected) torrents seeding after \(Int(timeoutSeconds)) s")
            }
            if elapsed - reported >= 10 {
                reported = elapsed
                printError("  \(count) of \(expected) seeding after \(Int(elapsed)) s")
            }
            run.stopIfInterrupted()
            usleep(client.pollMicroseconds)
        }
    }

    /// A libtorrent leecher for the set's `torrent`, with its session up and dialling the client.
    func startProbe(_ torrent: String) throws -> ChildProcess {
        try startLeecher(set.torrentPath(torrent), into: run.workspace + "/fetch-\(torrent)")
    }

    /// A libtorrent leecher for the torrent file at `path`, saving into `out` (emptied first), from
    /// `bind` or else the client's `leecherBind`; returned once its session is up and dialling.
    func startLeecher(_ path: String, into out: String, bind: String? = nil) throws -> ChildProcess {
        ExternalCommand.removeTree(out)
        let probe = try run.python(
            "lt.py",
            ["fetch", path, out, "--peer", client.peer, "--timeout", "\(Int(Self.restartTimeoutSeconds))"]
                + ((bind ?? client.leecherBind).map { ["--bind", $0] } ?? []),
            label: "fetch-" + URL(fileURLWithPath: out).lastPathComponent)
        let ready = probe.waitForLog(timeoutSeconds: 60) { _ in probe.firstJSON?["ready"] as? Bool }
        guard ready == true else {
            throw ExternalCommand.Failure(
                description: "the libtorrent leecher did not start: \(Self.lastLines(probe))")
        }
        return probe
    }

    /// CLOCK_MONOTONIC seconds when the leecher had `torrent`, or nil when it failed; stops it.
    func waitForProbe(_ probe: ChildProcess, torrent: String) -> Double? {
        defer { finish(probe) }
        _ = probe.waitForLog(timeoutSeconds: Self.restartTimeoutSeconds + 30) { _ in
            probe.lastJSON?["complete"] as? Bool
        }
        return Self.finished(probe, torrent)
    }

    /// CLOCK_MONOTONIC seconds when the leecher had the set's `torrent`, or nil when it did not.
    static func finished(_ probe: ChildProcess, _ torrent: String) -> Double? {
        guard probe.lastJSON?["complete"] as? Bool == true else { return nil }
        return (probe.lastJSON?["finished"] as? [String: Any])?[torrent + ".bin"] as? Double
    }

    /// Stops a leecher and forgets it.
    func finish(_ probe: ChildProcess) {
        probe.stop(graceSeconds: 5)
        run.release(probe)
    }

    /// Stops the client cleanly, then starts it again with a leecher waiting for `torrent`; polls
    /// until the leecher is done and `expected` torrents are seeding.
    func restart(torrent: String, expected: Int) throws -> RestartTiming {
        let stopSeconds = stop()
        let probe = try startProbe(torrent)
        defer { finish(probe) }
        let process = try start()
        var serve: Double?
        var allSeeding: Double?
        var probeDone = false
        while !probeDone || allSeeding == nil {
            let elapsed = seconds(ContinuousClock.now - process.started)
            if !probeDone && probe.reap() {
                probeDone = true
                serve = Self.finished(probe, torrent).map { $0 - process.startedMonotonicSeconds }
                if serve == nil { printError("  the leecher failed: \(Self.lastLines(probe))") }
            }
            if allSeeding == nil && client.seedingCount() >= expected { allSeeding = elapsed }
            if process.reap() {
                throw ExternalCommand.Failure(
                    description: "it exited (status \(process.exitStatus ?? -1)) after a restart: "
                        + Self.lastLines(process))
            }
            if elapsed > Self.restartTimeoutSeconds { break }
            run.stopIfInterrupted()
            usleep(probeDone ? client.pollMicroseconds : min(client.pollMicroseconds, 100_000))
        }
        printError(
            "  served \(torrent) after \(serve.map { Format.fixed($0, 2) + " s" } ?? "-"), all seeding after "
                + "\(allSeeding.map { Format.fixed($0, 2) + " s" } ?? "-") (stopping took "
                + "\(stopSeconds.map { Format.fixed($0, 2) + " s" } ?? "a SIGKILL"))")
        return RestartTiming(
            torrent: torrent, stopSeconds: stopSeconds, serveSeconds: serve, allSeedingSeconds: allSeeding,
            answerSeconds: client.answeredSeconds)
    }

    /// The first start until `expected` torrents are seeding, a leecher for `chosen[0]`, idle readings,
    /// a restart for each further torrent of `chosen`, idle readings again; `life` keeps what was
    /// measured before a failure.
    func measureLife(
        _ name: String, expected: Int, chosen: [String], options: ManyOptions, into life: inout SeederLife
    ) throws {
        printError("\(name): first start with \(expected) torrents to verify...")
        let process = try start()
        life.firstStartSeconds = try waitUntilAllSeeding(
            process, expected: expected, timeoutSeconds: Double(options.timeout),
            peakDescriptors: &life.peakDescriptors)
        printError("\(name): every torrent seeding after \(Format.fixed(life.firstStartSeconds ?? 0, 1)) s")
        let probe = try startProbe(chosen[0])
        life.firstLeecherServed = waitForProbe(probe, torrent: chosen[0]) != nil
        life.afterFirstStart = idleReadings(
            idleSeconds: options.idleSeconds, settleSeconds: options.settleSeconds)
        for (index, torrent) in chosen.dropFirst().enumerated() {
            printError("\(name): restart \(index + 1) of \(options.restarts), a leecher waits for \(torrent)")
            life.restarts.append(try restart(torrent: torrent, expected: expected))
        }
        life.afterRestart = idleReadings(
            idleSeconds: options.idleSeconds, settleSeconds: options.settleSeconds)
    }

    /// Threads, anonymous memory, descriptors and CPU over `idleSeconds`, after `settleSeconds` of quiet.
    func idleReadings(idleSeconds: Int, settleSeconds: Int) -> IdleReadings? {
        guard let pid = process?.pid else { return nil }
        sleep(UInt32(settleSeconds))
        guard let before = ProcFS.cpuSeconds(pid) else { return nil }
        sleep(UInt32(idleSeconds))
        guard let after = ProcFS.cpuSeconds(pid), let threads = ProcFS.threads(pid),
            let anonymous = ProcFS.anonymousResidentKiB(pid), let descriptors = ProcFS.descriptors(pid)
        else { return nil }
        return IdleReadings(
            threads: threads, anonymousKiB: anonymous, descriptors: descriptors,
            cpuSecondsPer10s: (after - before) * 10 / Double(idleSeconds))
    }

    /// The end of a child's log: the reason it gave, with its context. A Swift crash ends its log with
    /// a backtrace, so the runtime's own lines about it come first.
    static func lastLines(_ process: ChildProcess) -> String {
        let lines = process.log.split(separator: "\n")
        let crash = lines.filter { $0.contains("Fatal error") || $0.contains("Program crashed") }.prefix(2)
        return (crash + lines.suffix(2)).joined(separator: " / ")
    }
}
