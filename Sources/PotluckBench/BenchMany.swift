import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import Hashing

struct BenchMany: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "many",
        abstract:
            "Thousands of small torrents in one process: first start, restart, threads, memory, idle CPU.",
        discussion: """
            Makes --torrents torrents of 16-64 KiB with their data (many_torrents.py), then for each \
            --client starts one process that seeds all of them from the same data folder. First start: \
            seconds from its start until every torrent is verified and seeding (Potluck's --verbose log \
            names each one; `transmission-remote -l` lists each at 100 % and idle or seeding); then a \
            libtorrent leecher downloads one torrent chosen at random. Restart: the client is stopped \
            cleanly (SIGTERM) and started again, --restarts times; each time a libtorrent leecher that \
            was ready beforehand downloads another random torrent, timed from the client's start until \
            it has the torrent verified (to about 0.1 s when the cores are not busy). Threads \
            (/proc/PID/task), anonymous memory (RssAnon), descriptors and CPU over --idle-seconds \
            (utime + stime, per 10 s) are read once the client has served and been idle for 5 s: after \
            the first start and after the last restart. Descriptors are also sampled during the first \
            start. Transmission listens on a harness veth address (it ignores peers at 127.x), which \
            needs root.
            """)

    @Option(help: "Torrents to make and seed.")
    var torrents = 10_000

    @Option(
        name: .customLong("client"), parsing: .upToNextOption,
        help: "Clients to measure, in order (potluck, transmission).")
    var clients: [String] = ["potluck", "transmission"]

    @Option(help: "Restarts, each timed with another random torrent.")
    var restarts = 3

    @Option(
        name: .customLong("idle-seconds"), help: "Seconds idle CPU is measured over (reported per 10 s).")
    var idleSeconds = 10

    @Option(help: "Seconds a first start may take (Transmission verifies 10-20 torrents a second).")
    var timeout = 3600

    @Option(help: "Directory for the torrents and their data (removed afterwards).")
    var directory = "/var/tmp"

    @Option(
        help: "The interop harness folder (default: the build's copy of Tests/Interop beside the binary).")
    var harness: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    /// Seconds a restarted client may take to serve a torrent.
    static let restartTimeoutSeconds = 300.0
    /// Seconds of quiet before the idle readings.
    static let settleSeconds: UInt32 = 5

    func validate() throws {
        guard (1...100_000).contains(torrents) else {
            throw ValidationError("--torrents must be in 1...100000")
        }
        guard (1...20).contains(restarts) else { throw ValidationError("--restarts must be in 1...20") }
        guard timeout >= 10 else { throw ValidationError("--timeout must be at least 10 seconds") }
        guard (1...600).contains(idleSeconds) else {
            throw ValidationError("--idle-seconds must be in 1...600")
        }
        let kinds = try parseClients(clients, option: "--client")
        guard !kinds.isEmpty, kinds.allSatisfy({ $0 == .potluck || $0 == .transmission }) else {
            throw ValidationError(
                "--client: potluck or transmission (the clients measured holding many torrents)")
        }
    }

    func run() throws {
        let kinds = try parseClients(clients, option: "--client")
        let run = try BenchRun.start(
            "bench many with Transmission", needsRoot: kinds.contains(.transmission), directory: directory,
            harness: harness)
        defer { run.cleanup() }
        let set = ManyTorrents(folder: run.workspace + "/many", count: torrents)
        printError("making \(torrents) torrents of 16-64 KiB and their data...")
        let made = try ExternalCommand.run(
            "/usr/bin/python3",
            [run.harness + "/many_torrents.py", set.folder, "--count", "\(torrents)"],
            timeoutSeconds: 3600, mergeStandardError: true)
        guard made.status == 0 else {
            printError("potluck: many_torrents.py failed: \(made.standardOutput.suffix(400))")
            throw ExitCode(1)
        }
        // One torrent for the leecher after the first start, one more for each restart.
        let picks = Array((0..<torrents).shuffled().prefix(restarts + 1))
        let chosen = (0...restarts).map { set.name(picks[$0 % picks.count]) }
        var results: [ManyResult] = []
        for kind in kinds {
            results.append(measure(kind, set: set, run: run, chosen: chosen))
        }
        print(
            "Many torrents: \(torrents) torrents of 16-64 KiB (16 KiB pieces) seeded by one process, "
                + "data in the page cache, \(HashPool.coreCount) cores\n")
        print(Self.table(results).rendered)
        print()
        for result in results {
            if let note = result.note { print("\(result.client.rawValue): \(note)") }
            guard !result.restarts.isEmpty else { continue }
            let each = result.restarts.map { restart in
                "\(restart.torrent) \(restart.serveSeconds.map { Format.fixed($0, 2) + " s" } ?? "-")"
            }
            print("\(result.client.rawValue) restarts, serving: \(each.joined(separator: ", "))")
        }
        print("\nAfter the first start (every torrent verified), idle:\n")
        print(Self.firstStartTable(results).rendered)
        if let json { Self.writeJSON(json, torrents: torrents, results: results) }
    }

    // MARK: One client

    private func measure(
        _ kind: ClientKind, set: ManyTorrents, run: BenchRun, chosen: [String]
    ) -> ManyResult {
        var result = ManyResult(client: kind, version: kind.isInstalled ? kind.version : "-")
        result.torrents = set.count
        guard kind.isInstalled else {
            result.status = "not installed (apt-get install \(kind.debianPackage))"
            return result
        }
        let seeder: ManySeeder
        do {
            let client: ManyClient =
                kind == .potluck
                ? PotluckManyClient(run: run, set: set) : try TransmissionManyClient(run: run, set: set)
            seeder = ManySeeder(client, run: run, set: set)
        } catch {
            result.note = "\(error)"
            return result
        }
        defer { seeder.stop() }
        do {
            printError("\(kind.rawValue): first start with \(set.count) torrents to verify...")
            let process = try seeder.start()
            result.firstStartSeconds = try waitUntilAllSeeding(
                seeder, process, timeoutSeconds: Double(timeout), peakDescriptors: &result.peakDescriptors)
            printError(
                "\(kind.rawValue): every torrent seeding after "
                    + "\(Format.fixed(result.firstStartSeconds ?? 0, 1)) s")
            let probe = try startProbe(chosen[0], seeder: seeder, run: run)
            result.firstLeecherServed = waitForProbe(probe, torrent: chosen[0], run: run) != nil
            result.afterFirstStart = idleReadings(process.pid)
            for (index, torrent) in chosen.dropFirst().enumerated() {
                printError(
                    "\(kind.rawValue): restart \(index + 1) of \(restarts), a leecher waits for \(torrent)")
                result.restarts.append(try restart(seeder, torrent: torrent, run: run))
            }
            if let process = seeder.process { result.afterRestart = idleReadings(process.pid) }
            result.status = result.restarts.allSatisfy { $0.serveSeconds != nil } ? "ok" : "failed"
        } catch {
            printError("\(kind.rawValue): \(error)")
            result.note = "\(error)"
        }
        return result
    }

    /// Seconds from the process's start until the client says every torrent is seeding; the most
    /// descriptors it held meanwhile (sampled twice a second: listing thousands costs).
    private func waitUntilAllSeeding(
        _ seeder: ManySeeder, _ process: ChildProcess, timeoutSeconds: Double, peakDescriptors: inout Int
    ) throws -> Double {
        var reported = 0.0
        var sampled = -1.0
        while true {
            let count = seeder.client.seedingCount()
            let elapsed = seconds(ContinuousClock.now - process.started)
            if count >= seeder.set.count { return elapsed }
            if elapsed - sampled >= 0.5 {
                sampled = elapsed
                peakDescriptors = max(peakDescriptors, ProcFS.descriptors(process.pid) ?? 0)
            }
            if process.reap() {
                throw ExternalCommand.Failure(
                    description: "it exited (status \(process.exitStatus ?? -1)) with \(count) of "
                        + "\(seeder.set.count) torrents seeding, after holding up to \(peakDescriptors) "
                        + "descriptors: \(lastLines(process))")
            }
            if elapsed > timeoutSeconds {
                throw ExternalCommand.Failure(
                    description:
                        "\(count) of \(seeder.set.count) torrents seeding after \(Int(timeoutSeconds)) s")
            }
            if elapsed - reported >= 10 {
                reported = elapsed
                printError("  \(count) of \(seeder.set.count) seeding after \(Int(elapsed)) s")
            }
            seeder.run.stopIfInterrupted()
            usleep(seeder.client.pollMicroseconds)
        }
    }

    /// A libtorrent leecher for `torrent`, with its session up and dialling the seeder.
    private func startProbe(_ torrent: String, seeder: ManySeeder, run: BenchRun) throws -> ChildProcess {
        let out = run.workspace + "/fetch-\(torrent)"
        ExternalCommand.removeTree(out)
        let probe = try run.python(
            "lt.py",
            [
                "fetch", seeder.set.torrentPath(torrent), out, "--peer", seeder.client.peer, "--timeout",
                "\(Int(Self.restartTimeoutSeconds))",
            ] + (seeder.client.leecherBind.map { ["--bind", $0] } ?? []), label: "fetch-\(torrent)")
        let ready = probe.waitForLog(timeoutSeconds: 60) { _ in probe.firstJSON?["ready"] as? Bool }
        guard ready == true else {
            throw ExternalCommand.Failure(
                description: "the libtorrent leecher did not start: \(lastLines(probe))")
        }
        return probe
    }

    /// CLOCK_MONOTONIC seconds when the leecher had `torrent`, or nil when it failed; stops it.
    private func waitForProbe(_ probe: ChildProcess, torrent: String, run: BenchRun) -> Double? {
        defer { finish(probe, run: run) }
        _ = probe.waitForLog(timeoutSeconds: Self.restartTimeoutSeconds + 30) { _ in
            probe.lastJSON?["complete"] as? Bool
        }
        return Self.finished(probe, torrent)
    }

    private static func finished(_ probe: ChildProcess, _ torrent: String) -> Double? {
        guard probe.lastJSON?["complete"] as? Bool == true else { return nil }
        return (probe.lastJSON?["finished"] as? [String: Any])?[torrent + ".bin"] as? Double
    }

    private func finish(_ probe: ChildProcess, run: BenchRun) {
        probe.stop(graceSeconds: 5)
        run.release(probe)
    }

    /// Stops the client cleanly, then starts it again with a leecher waiting for `torrent`.
    private func restart(_ seeder: ManySeeder, torrent: String, run: BenchRun) throws -> ManyResult.Restart {
        let stopSeconds = seeder.stop()
        let probe = try startProbe(torrent, seeder: seeder, run: run)
        defer { finish(probe, run: run) }
        let process = try seeder.start()
        var serve: Double?
        var allSeeding: Double?
        var probeDone = false
        while !probeDone || allSeeding == nil {
            let elapsed = seconds(ContinuousClock.now - process.started)
            if !probeDone && probe.reap() {
                probeDone = true
                serve = Self.finished(probe, torrent).map { $0 - process.startedMonotonicSeconds }
                if serve == nil { printError("  the leecher failed: \(lastLines(probe))") }
            }
            if allSeeding == nil && seeder.client.seedingCount() >= seeder.set.count { allSeeding = elapsed }
            if process.reap() {
                throw ExternalCommand.Failure(
                    description: "it exited (status \(process.exitStatus ?? -1)) after a restart: "
                        + lastLines(process))
            }
            if elapsed > Self.restartTimeoutSeconds { break }
            run.stopIfInterrupted()
            usleep(probeDone ? seeder.client.pollMicroseconds : min(seeder.client.pollMicroseconds, 100_000))
        }
        printError(
            "  served \(torrent) after \(serve.map { Format.fixed($0, 2) + " s" } ?? "-"), all seeding after "
                + "\(allSeeding.map { Format.fixed($0, 2) + " s" } ?? "-") (stopping took "
                + "\(stopSeconds.map { Format.fixed($0, 2) + " s" } ?? "a SIGKILL"))")
        return ManyResult.Restart(
            torrent: torrent, stopSeconds: stopSeconds, serveSeconds: serve, allSeedingSeconds: allSeeding)
    }

    /// Threads, anonymous memory, descriptors and CPU over --idle-seconds, after `settleSeconds` of quiet.
    private func idleReadings(_ pid: pid_t) -> ManyResult.Idle? {
        sleep(Self.settleSeconds)
        guard let before = ProcFS.cpuSeconds(pid) else { return nil }
        sleep(UInt32(idleSeconds))
        guard let after = ProcFS.cpuSeconds(pid), let threads = ProcFS.threads(pid),
            let anonymous = ProcFS.anonymousResidentKiB(pid), let descriptors = ProcFS.descriptors(pid)
        else { return nil }
        return ManyResult.Idle(
            threads: threads, anonymousKiB: anonymous, descriptors: descriptors,
            cpuSecondsPer10s: (after - before) * 10 / Double(idleSeconds))
    }

    /// The end of a child's log: the reason it gave, with its context.
    private func lastLines(_ process: ChildProcess) -> String {
        process.log.split(separator: "\n").suffix(2).joined(separator: " / ")
    }

    // MARK: Report

    static func secondsCell(_ value: Double?) -> String { value.map { Format.fixed($0, 2) } ?? "-" }

    static func mebibytes(_ kib: Int?) -> String { kib.map { Format.fixed(Double($0) / 1024, 1) } ?? "-" }

    static func table(_ results: [ManyResult]) -> Table {
        var table = Table(
            "client", "version", "result", "torrents", "first start s", "restart to serve s",
            "restart to all seeding s", "threads", "RssAnon MiB", "idle CPU s/10 s")
        for result in results {
            let idle = result.afterRestart
            table.add(
                result.client.rawValue, result.version, result.status, "\(result.torrents)",
                secondsCell(result.firstStartSeconds), secondsCell(result.medianServeSeconds),
                secondsCell(median(result.restarts.compactMap(\.allSeedingSeconds))),
                idle.map { "\($0.threads)" } ?? "-", mebibytes(idle?.anonymousKiB),
                idle.map { Format.fixed($0.cpuSecondsPer10s, 2) } ?? "-")
        }
        return table
    }

    static func firstStartTable(_ results: [ManyResult]) -> Table {
        var table = Table(
            "client", "leecher", "peak descriptors", "descriptors", "threads", "RssAnon MiB",
            "idle CPU s/10 s")
        for result in results {
            let idle = result.afterFirstStart
            let leecher = result.firstLeecherServed.map { $0 ? "ok" : "failed" } ?? "-"
            table.add(
                result.client.rawValue, leecher,
                result.peakDescriptors > 0 ? "\(result.peakDescriptors)" : "-",
                idle.map { "\($0.descriptors)" } ?? "-", idle.map { "\($0.threads)" } ?? "-",
                mebibytes(idle?.anonymousKiB), idle.map { Format.fixed($0.cpuSecondsPer10s, 2) } ?? "-")
        }
        return table
    }

    static func writeJSON(_ path: String, torrents: Int, results: [ManyResult]) {
        func idle(_ readings: ManyResult.Idle?) -> Any {
            guard let readings else { return NSNull() }
            return [
                "threads": readings.threads, "rss_anon_kib": readings.anonymousKiB,
                "descriptors": readings.descriptors,
                "idle_cpu_seconds_per_10s": readings.cpuSecondsPer10s,
            ]
        }
        let object: [String: Any] = [
            "benchmark": "many", "date": ISO8601DateFormatter().string(from: Date()),
            "cores": HashPool.coreCount, "torrents": torrents,
            "results": results.map { result -> [String: Any] in
                [
                    "client": result.client.rawValue, "version": result.version, "result": result.status,
                    "note": result.note ?? NSNull(),
                    "first_start_seconds": result.firstStartSeconds ?? NSNull(),
                    "leecher_after_first_start": result.firstLeecherServed ?? NSNull(),
                    "first_start_peak_descriptors": result.peakDescriptors,
                    "after_first_start": idle(result.afterFirstStart),
                    "restarts": result.restarts.map { restart -> [String: Any] in
                        [
                            "torrent": restart.torrent, "stop_seconds": restart.stopSeconds ?? NSNull(),
                            "serve_seconds": restart.serveSeconds ?? NSNull(),
                            "all_seeding_seconds": restart.allSeedingSeconds ?? NSNull(),
                        ]
                    },
                    "restart_to_serve_median_seconds": result.medianServeSeconds ?? NSNull(),
                    "after_restart": idle(result.afterRestart),
                ]
            },
        ]
        writeJSONReport(object, to: path)
    }
}

/// What `bench many` measured of one client.
struct ManyResult {
    struct Idle {
        let threads: Int
        let anonymousKiB: Int
        let descriptors: Int
        let cpuSecondsPer10s: Double
    }

    struct Restart {
        let torrent: String
        /// Seconds the clean stop before it took; nil when the client had to be killed.
        let stopSeconds: Double?
        /// Seconds from the client's start until the leecher had the torrent; nil when it did not.
        let serveSeconds: Double?
        let allSeedingSeconds: Double?
    }

    let client: ClientKind
    let version: String
    var status = "failed"
    var note: String?
    var torrents = 0
    var firstStartSeconds: Double?
    /// The most descriptors it held during its first start (sampled).
    var peakDescriptors = 0
    /// Whether a leecher got a random torrent after the first start.
    var firstLeecherServed: Bool?
    var afterFirstStart: Idle?
    var restarts: [Restart] = []
    var afterRestart: Idle?

    init(client: ClientKind, version: String) {
        self.client = client
        self.version = version
    }

    var medianServeSeconds: Double? {
        restarts.contains { $0.serveSeconds == nil } ? nil : median(restarts.compactMap(\.serveSeconds))
    }
}

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
}

/// A client that holds every torrent of the set in one process.
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
}

/// A client's process as `bench many` starts and stops it.
final class ManySeeder {
    let client: ManyClient
    let run: BenchRun
    let set: ManyTorrents
    private(set) var process: ChildProcess?

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
}

/// `potluck seed FOLDER`, which names each torrent it seeds in its --verbose log.
final class PotluckManyClient: ManyClient {
    let peer = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
    let leecherBind: String? = nil
    let pollMicroseconds: UInt32 = 50_000
    private let run: BenchRun
    private let set: ManyTorrents
    private var log: SeedingLog?

    init(run: BenchRun, set: ManyTorrents) {
        self.run = run
        self.set = set
    }

    func launch() throws -> ChildProcess {
        let process = try run.spawn(
            ExternalCommand.currentExecutable(),
            [
                "seed", set.torrents, "--data", set.data, "--listen", peer, "--verbose", "--quiet",
                "--no-dht", "--no-lsd",
            ],
            label: "potluck-seed")
        log = SeedingLog(path: process.logPath)
        return process
    }

    func seedingCount() -> Int { log?.update() ?? 0 }
}

/// transmission-daemon with a private configuration, its torrents added through transmission-remote.
/// It listens on the root-side address of a harness veth: Transmission 3.00 ignores peers at 127.x.
final class TransmissionManyClient: ManyClient {
    let peer: String
    let leecherBind: String?
    /// Each poll lists every torrent over RPC: not more than once a second.
    let pollMicroseconds: UInt32 = 1_000_000
    private let run: BenchRun
    private let set: ManyTorrents
    private let configDirectory: String
    private let rpc: String
    private var added = false

    init(run: BenchRun, set: ManyTorrents) throws {
        self.run = run
        self.set = set
        let namespace = try run.createNamespace(rootAddresses: 1)
        let address = namespace.addresses[0]
        configDirectory = run.workspace + "/transmission"
        rpc = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let peerPort = SwarmFixture.freePort(on: address)
        peer = "\(address):\(peerPort)"
        leecherBind = namespace.addresses[1]
        let settings: [String: Any] = [
            "dht-enabled": false, "pex-enabled": false, "lpd-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "blocklist-enabled": false,
            "peer-port": peerPort, "peer-port-random-on-start": false, "bind-address-ipv4": address,
            "rpc-enabled": true, "rpc-bind-address": "127.0.0.1",
            "rpc-port": Int(rpc.split(separator: ":")[1])!, "rpc-authentication-required": false,
            "rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
            "download-dir": set.data, "incomplete-dir-enabled": false, "watch-dir-enabled": false,
            "rename-partial-files": false, "start-added-torrents": true,
            "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
            "speed-limit-up-enabled": false, "speed-limit-down-enabled": false, "alt-speed-enabled": false,
            "download-queue-enabled": false, "seed-queue-enabled": false, "queue-stalled-enabled": false,
            "scrape-paused-torrents-enabled": false, "encryption": 0, "message-level": 1,
        ]
        mkdir(configDirectory, 0o700)
        guard let data = try? JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted]),
            FileManager.default.createFile(atPath: configDirectory + "/settings.json", contents: data)
        else {
            throw ExternalCommand.Failure(description: "cannot write Transmission's settings")
        }
    }

    func launch() throws -> ChildProcess {
        let process = try run.spawn(
            "/usr/bin/transmission-daemon", ["--foreground", "--config-dir", configDirectory],
            label: "transmission-daemon")
        let answering = process.waitForLog(timeoutSeconds: 120) { _ in
            (try? ExternalCommand.run(Self.remote, [self.rpc, "--session-info"], timeoutSeconds: 10))?.status
                == 0
                ? true : nil
        }
        guard answering == true else {
            throw ExternalCommand.Failure(description: "transmission-daemon's RPC did not answer")
        }
        if !added {
            added = true
            // One -a per file: given several files after one -a, transmission-remote 3.00 adds the last.
            let names = (0..<set.count).map(set.name)
            for start in stride(from: 0, to: names.count, by: 500) {
                let files = names[start..<min(names.count, start + 500)].flatMap {
                    ["-a", set.torrentPath($0)]
                }
                let result = try ExternalCommand.run(Self.remote, [rpc] + files, timeoutSeconds: 600)
                guard result.status == 0 else {
                    throw ExternalCommand.Failure(
                        description: "transmission-remote -a failed (\(result.status))")
                }
            }
        }
        return process
    }

    private static let remote = "/usr/bin/transmission-remote"

    /// From `transmission-remote -l`: rows of "ID Done Have ETA Up Down Ratio Status Name", where Have,
    /// ETA and Status may hold spaces; the names here hold none, so Status ends just before the name.
    func seedingCount() -> Int {
        guard let listed = try? ExternalCommand.run(Self.remote, [rpc, "--list"], timeoutSeconds: 60),
            listed.status == 0
        else { return 0 }
        return listed.standardOutput.split(separator: "\n").reduce(0) { count, line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 9, fields[1] == "100%" else { return count }
            return ["Idle", "Seeding"].contains(fields[fields.count - 2]) ? count + 1 : count
        }
    }
}
