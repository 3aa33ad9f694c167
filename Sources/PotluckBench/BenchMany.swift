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
            (utime + stime, per 10 s) are read once the client has served and been idle for --settle-seconds: after \
            the first start and after the last restart. Descriptors are also sampled during the first \
            start. Transmission listens on a harness veth address (it ignores peers at 127.x), which \
            needs root.
            """)

    @Option(help: "Torrents to make and seed.")
    var torrents = 10_000

    @OptionGroup var options: ManyOptions

    func validate() throws {
        guard (1...100_000).contains(torrents) else {
            throw ValidationError("--torrents must be in 1...100000")
        }
    }

    func run() throws {
        let run = try options.startRun("bench many with Transmission")
        defer { run.cleanup() }
        let set = ManyTorrents(folder: run.workspace + "/many", count: torrents)
        printError("making \(torrents) torrents of 16-64 KiB and their data...")
        do {
            try set.make(harness: run.harness)
        } catch {
            printError("potluck: \(error)")
            throw ExitCode(1)
        }
        let chosen = options.chosenTorrents(of: set)
        var results: [ManyResult] = []
        for kind in options.kinds {
            results.append(measure(kind, set: set, run: run, chosen: chosen))
        }
        print(
            "Many torrents: \(torrents) torrents of 16-64 KiB (16 KiB pieces) seeded by one process, "
                + "data in the page cache, \(HashPool.coreCount) cores\n")
        print(Self.table(results).rendered)
        print()
        for result in results {
            if let note = result.note { print("\(result.client.rawValue): \(note)") }
            guard !result.life.restarts.isEmpty else { continue }
            let each = result.life.restarts.map { restart in
                "\(restart.torrent) \(restart.serveSeconds.map { Format.fixed($0, 2) + " s" } ?? "-")"
            }
            print("\(result.client.rawValue) restarts, serving: \(each.joined(separator: ", "))")
        }
        print("\nAfter the first start (every torrent verified), idle:\n")
        print(Self.firstStartTable(results).rendered)
        if let json = options.placement.json { Self.writeJSON(json, torrents: torrents, results: results) }
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
            try seeder.measureLife(
                kind.rawValue, expected: set.count, chosen: chosen, options: options, into: &result.life)
            result.status = result.life.served ? "ok" : "failed"
        } catch {
            printError("\(kind.rawValue): \(error)")
            result.note = "\(error)"
        }
        return result
    }

    // MARK: Report

    static func table(_ results: [ManyResult]) -> Table {
        var table = Table(
            "client", "version", "result", "torrents", "first start s", "restart to serve s",
            "restart to all seeding s", "threads", "RssAnon MiB", "idle CPU s/10 s")
        for result in results {
            let life = result.life
            let idle = life.afterRestart
            table.add(
                result.client.rawValue, result.version, result.status, "\(result.torrents)",
                Table.seconds(life.firstStartSeconds), Table.seconds(life.median(\.serveSeconds)),
                Table.seconds(CommandSupport.median(life.restarts.compactMap(\.allSeedingSeconds))),
                idle.map { "\($0.threads)" } ?? "-", Table.mebibytes(kib: idle?.anonymousKiB),
                idle.map { Format.fixed($0.cpuSecondsPer10s, 2) } ?? "-")
        }
        return table
    }

    static func firstStartTable(_ results: [ManyResult]) -> Table {
        var table = Table(
            "client", "leecher", "peak descriptors", "descriptors", "threads", "RssAnon MiB",
            "idle CPU s/10 s")
        for result in results {
            let idle = result.life.afterFirstStart
            let leecher = result.life.firstLeecherServed.map { $0 ? "ok" : "failed" } ?? "-"
            let peak = result.life.peakDescriptors
            table.add(
                result.client.rawValue, leecher, peak > 0 ? "\(peak)" : "-",
                idle.map { "\($0.descriptors)" } ?? "-", idle.map { "\($0.threads)" } ?? "-",
                Table.mebibytes(kib: idle?.anonymousKiB),
                idle.map { Format.fixed($0.cpuSecondsPer10s, 2) } ?? "-")
        }
        return table
    }

    static func writeJSON(_ path: String, torrents: Int, results: [ManyResult]) {
        let object: [String: Any] = [
            "benchmark": "many", "date": ISO8601DateFormatter().string(from: Date()),
            "cores": HashPool.coreCount, "torrents": torrents,
            "results": results.map { result -> [String: Any] in
                result.life.json.merging(
                    [
                        "client": result.client.rawValue, "version": result.version, "result": result.status,
                        "note": result.note ?? NSNull(),
                    ]
                ) { _, header in header }
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
    var life = SeederLife()

    init(client: ClientKind, version: String) {
        self.client = client
        self.version = version
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
