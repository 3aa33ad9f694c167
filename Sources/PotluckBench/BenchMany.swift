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
        do {
            try set.make(harness: run.harness)
        } catch {
            printError("potluck: \(error)")
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
            result.firstStartSeconds = try seeder.waitUntilAllSeeding(
                process, expected: set.count, timeoutSeconds: Double(timeout),
                peakDescriptors: &result.peakDescriptors)
            printError(
                "\(kind.rawValue): every torrent seeding after "
                    + "\(Format.fixed(result.firstStartSeconds ?? 0, 1)) s")
            let probe = try seeder.startProbe(chosen[0])
            result.firstLeecherServed = seeder.waitForProbe(probe, torrent: chosen[0]) != nil
            result.afterFirstStart = seeder.idleReadings(idleSeconds: idleSeconds)
            for (index, torrent) in chosen.dropFirst().enumerated() {
                printError(
                    "\(kind.rawValue): restart \(index + 1) of \(restarts), a leecher waits for \(torrent)")
                result.restarts.append(try seeder.restart(torrent: torrent, expected: set.count))
            }
            result.afterRestart = seeder.idleReadings(idleSeconds: idleSeconds)
            result.status = result.restarts.allSatisfy { $0.serveSeconds != nil } ? "ok" : "failed"
        } catch {
            printError("\(kind.rawValue): \(error)")
            result.note = "\(error)"
        }
        return result
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
                    "after_first_start": result.afterFirstStart?.json ?? NSNull(),
                    "restarts": result.restarts.map(\.json),
                    "restart_to_serve_median_seconds": result.medianServeSeconds ?? NSNull(),
                    "after_restart": result.afterRestart?.json ?? NSNull(),
                ]
            },
        ]
        writeJSONReport(object, to: path)
    }
}

/// What `bench many` measured of one client.
struct ManyResult {
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
    var afterFirstStart: IdleReadings?
    var restarts: [RestartTiming] = []
    var afterRestart: IdleReadings?

    init(client: ClientKind, version: String) {
        self.client = client
        self.version = version
    }

    var medianServeSeconds: Double? {
        restarts.contains { $0.serveSeconds == nil } ? nil : median(restarts.compactMap(\.serveSeconds))
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

/// transmission-daemon (`TransmissionDaemonSetup`), its torrents added through transmission-remote.
final class TransmissionManyClient: ManyClient {
    var peer: String { setup.peer }
    var leecherBind: String? { setup.leecherAddresses.first }
    /// Each poll lists every torrent over RPC: not more than once a second.
    let pollMicroseconds: UInt32 = 1_000_000
    private let run: BenchRun
    private let set: ManyTorrents
    private let setup: TransmissionDaemonSetup
    private var rpc: String { setup.rpc }
    private var added = false

    init(run: BenchRun, set: ManyTorrents) throws {
        self.run = run
        self.set = set
        setup = try TransmissionDaemonSetup(run: run, downloadDirectory: set.data)
    }

    func launch() throws -> ChildProcess {
        let process = try setup.spawn(run: run)
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
