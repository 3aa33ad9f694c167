import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import Hashing

struct BenchDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract:
            "`potluck daemon` beside transmission-daemon holding many torrents: start-up, restart, memory, "
            + "threads, idle CPU, torrent-get latency while seeding.",
        discussion: """
            Makes --torrents torrents of 16-64 KiB with their data (many_torrents.py) and one of \
            --load-mib MiB, then for each --client starts that daemon with an empty state and adds every \
            torrent over RPC (torrent-add with the metainfo; the data is already complete on disk, so \
            each is verified, then seeds). First start: seconds from the daemon's start until torrent-get \
            lists every torrent seeding. Restart (--restarts times): the daemon is stopped cleanly \
            (SIGTERM) and started again while a libtorrent leecher, ready beforehand, waits for a random \
            small torrent; timed from the start until the RPC answers, until the leecher has the torrent \
            verified, and until every torrent is seeding again. Threads, RssAnon, descriptors and CPU \
            over --idle-seconds (per 10 s) are read after 5 s of quiet, after the first start and after \
            the last restart. Then torrent-get of every torrent with the fields `transmission-remote -l` \
            asks for (plus percentDone and peersConnected) is timed --samples times from this process, \
            first idle, then while libtorrent leechers download the large torrent from the daemon one \
            after another at full speed (samples are taken only while one is downloading). Transmission \
            listens on a harness veth address (it ignores peers at 127.x), which needs root.
            """)

    @Option(help: "Small torrents to make and seed.")
    var torrents = 1_000

    @Option(
        name: .customLong("client"), parsing: .upToNextOption,
        help: "Daemons to measure, in order (potluck, transmission).")
    var clients: [String] = ["potluck", "transmission"]

    @Option(help: "Restarts, each timed with another random torrent.")
    var restarts = 3

    @Option(
        name: .customLong("idle-seconds"), help: "Seconds idle CPU is measured over (reported per 10 s).")
    var idleSeconds = 10

    @Option(help: "torrent-get calls timed idle, and again while seeding.")
    var samples = 50

    @Option(name: .customLong("load-mib"), help: "Size of the torrent leechers download while sampling.")
    var loadMiB = 256

    @Option(help: "Seconds a first start may take (Transmission verifies 10-20 torrents a second).")
    var timeout = 3600

    @Option(help: "Directory for the torrents and their data (removed afterwards).")
    var directory = "/var/tmp"

    @Option(
        help: "The interop harness folder (default: the build's copy of Tests/Interop beside the binary).")
    var harness: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    /// What `transmission-remote -l` asks torrent-get for (remote.c, 3.00), and the web client's
    /// percentDone and peersConnected.
    static let listFields = [
        "error", "errorString", "eta", "id", "isFinished", "leftUntilDone", "name", "peersGettingFromUs",
        "peersSendingToUs", "rateDownload", "rateUpload", "sizeWhenDone", "status", "uploadRatio",
        "percentDone", "peersConnected",
    ]
    /// Leechers of the large torrent each daemon may serve while sampling: Transmission needs an
    /// address for each.
    static let loadLeechers = 24
    /// Seconds between torrent-get samples.
    static let sampleGapMicroseconds: UInt32 = 50_000

    func validate() throws {
        guard (1...100_000).contains(torrents) else {
            throw ValidationError("--torrents must be in 1...100000")
        }
        guard (1...20).contains(restarts) else { throw ValidationError("--restarts must be in 1...20") }
        guard (1...10_000).contains(samples) else { throw ValidationError("--samples must be in 1...10000") }
        guard (1...4096).contains(loadMiB) else { throw ValidationError("--load-mib must be in 1...4096") }
        guard timeout >= 10 else { throw ValidationError("--timeout must be at least 10 seconds") }
        guard (1...600).contains(idleSeconds) else {
            throw ValidationError("--idle-seconds must be in 1...600")
        }
        let kinds = try parseClients(clients, option: "--client")
        guard !kinds.isEmpty, kinds.allSatisfy({ $0 == .potluck || $0 == .transmission }) else {
            throw ValidationError("--client: potluck or transmission (the daemons with Transmission's RPC)")
        }
    }

    func run() throws {
        let kinds = try parseClients(clients, option: "--client")
        let run = try BenchRun.start(
            "bench daemon with Transmission", needsRoot: kinds.contains(.transmission), directory: directory,
            harness: harness)
        defer { run.cleanup() }
        let set = ManyTorrents(folder: run.workspace + "/many", count: torrents)
        let load = ManyTorrents(folder: run.workspace + "/load", count: 1)
        printError("making \(torrents) torrents of 16-64 KiB and one of \(loadMiB) MiB, with their data...")
        do {
            try set.make(harness: run.harness)
            try load.make(harness: run.harness, bytes: loadMiB << 20, pieceBytes: 1 << 20)
        } catch {
            printError("potluck: \(error)")
            throw ExitCode(1)
        }
        // One torrent for the leecher after the first start, one more for each restart.
        let picks = Array((0..<torrents).shuffled().prefix(restarts + 1))
        let chosen = (0...restarts).map { set.name(picks[$0 % picks.count]) }
        var results: [DaemonResult] = []
        for kind in kinds {
            results.append(measure(kind, set: set, load: load, run: run, chosen: chosen))
        }
        print(
            "Daemons: \(torrents) torrents of 16-64 KiB (16 KiB pieces) and one of \(loadMiB) MiB, added "
                + "over RPC, data in the page cache, \(HashPool.coreCount) cores\n")
        print(Self.clientTable(results).rendered)
        print()
        print(Self.table(results).rendered)
        print()
        for result in results {
            if let note = result.note { print("\(result.client.rawValue): \(note)") }
            guard !result.restarts.isEmpty else { continue }
            let each = result.restarts.map { restart in
                "\(restart.timing.torrent) \(Self.secondsCell(restart.servingSeconds))"
            }
            print(
                "\(result.client.rawValue) restarts, RPC answering and serving (s): \(each.joined(separator: ", "))"
            )
        }
        if let json { Self.writeJSON(json, torrents: torrents, loadMiB: loadMiB, results: results) }
    }

    // MARK: One daemon

    private func measure(
        _ kind: ClientKind, set: ManyTorrents, load: ManyTorrents, run: BenchRun, chosen: [String]
    ) -> DaemonResult {
        var result = DaemonResult(client: kind, version: kind.isInstalled ? kind.version : "-")
        result.torrents = set.count
        guard kind.isInstalled else {
            result.status = "not installed (apt-get install \(kind.debianPackage))"
            return result
        }
        let additions =
            (0..<set.count).map {
                RPCDaemonClient.Addition(path: set.torrentPath(set.name($0)), downloadDirectory: set.data)
            } + [RPCDaemonClient.Addition(path: load.torrentPath(load.name(0)), downloadDirectory: load.data)]
        let client: RPCDaemonClient
        let loadBinds: [String?]
        do {
            let made = try Self.client(kind, run: run, set: set, additions: additions)
            client = made.client
            loadBinds = made.loadBinds
        } catch {
            result.note = "\(error)"
            return result
        }
        let seeder = ManySeeder(client, run: run, set: set)
        defer { seeder.stop() }
        let expected = additions.count
        do {
            printError("\(kind.rawValue): first start, adding \(expected) torrents to verify...")
            let process = try seeder.start()
            result.firstStartSeconds = try seeder.waitUntilAllSeeding(
                process, expected: expected, timeoutSeconds: Double(timeout),
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
                let timing = try seeder.restart(torrent: torrent, expected: expected)
                result.restarts.append(
                    DaemonResult.Restart(timing: timing, answerSeconds: client.answeredSeconds))
            }
            result.afterRestart = seeder.idleReadings(idleSeconds: idleSeconds)
            printError("\(kind.rawValue): timing torrent-get of \(expected) torrents, idle...")
            result.idleLatency = try sampleTorrentGet(client, count: samples)
            printError("\(kind.rawValue): timing torrent-get while leechers download \(loadMiB) MiB...")
            try sampleUnderLoad(
                client, seeder: seeder, torrent: load.torrentPath(load.name(0)), binds: loadBinds,
                into: &result)
            let complete =
                result.restarts.allSatisfy { $0.servingSeconds != nil } && result.firstLeecherServed == true
                && result.loadLatency != nil
            result.status = complete ? "ok" : "failed"
        } catch {
            printError("\(kind.rawValue): \(error)")
            result.note = "\(error)"
        }
        return result
    }

    /// The daemon's client, and the addresses the leechers of the large torrent bind to in turn (nil:
    /// loopback's default).
    private static func client(
        _ kind: ClientKind, run: BenchRun, set: ManyTorrents, additions: [RPCDaemonClient.Addition]
    ) throws -> (client: RPCDaemonClient, loadBinds: [String?]) {
        if kind == .transmission {
            let setup = try TransmissionDaemonSetup(
                run: run, downloadDirectory: set.data, leecherAddresses: 1 + loadLeechers)
            let client = RPCDaemonClient(
                peer: setup.peer, leecherBind: setup.leecherAddresses[0], rpc: setup.rpc, additions: additions
            ) { try setup.spawn(run: run) }
            return (client, Array(setup.leecherAddresses.dropFirst()))
        }
        let rpc = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let peer = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let state = run.workspace + "/potluck-daemon"
        let client = RPCDaemonClient(peer: peer, leecherBind: nil, rpc: rpc, additions: additions) {
            // Warnings and errors only, as Transmission's message-level 1.
            try run.spawn(
                ExternalCommand.currentExecutable(),
                [
                    "daemon", "--state", state, "--download-dir", set.data, "--rpc", rpc, "--listen", peer,
                    "--no-dht", "--no-lsd", "--log-level", "warning",
                ],
                label: "potluck-daemon")
        }
        return (client, Array(repeating: nil, count: loadLeechers))
    }

    /// Times `count` torrent-get calls of every torrent's list fields, one after another.
    private func sampleTorrentGet(_ client: RPCDaemonClient, count: Int) throws -> LatencySummary? {
        var latencies: [Double] = []
        for _ in 0..<count {
            latencies.append(try client.rpc.call("torrent-get", ["fields": Self.listFields]).seconds)
            usleep(Self.sampleGapMicroseconds)
        }
        return LatencySummary(seconds: latencies)
    }

    /// Times torrent-get while libtorrent leechers download `torrent` from the daemon, one after
    /// another (each from the next of `binds`). Samples are taken only while a leecher's verified bytes
    /// grew in the last 0.3 s: a new leecher may wait for an unchoke first (Transmission unchokes every
    /// 10 s). Also the leechers' download rate over the samples, and the daemon's RssAnon at the end.
    private func sampleUnderLoad(
        _ client: RPCDaemonClient, seeder: ManySeeder, torrent: String, binds: [String?],
        into result: inout DaemonResult
    ) throws {
        guard let pid = seeder.process?.pid else { return }
        var latencies: [Double] = []
        var next = binds.makeIterator()
        var leecher: LoadLeecher?
        defer { if let leecher { seeder.finish(leecher.process) } }
        var movedBytes = 0.0
        var movedSeconds = 0.0
        // The leecher's progress at the previous sample, while it has been downloading since.
        var previous: (seconds: Double, bytes: Double)?
        while latencies.count < samples {
            if leecher == nil || leecher?.process.reap() == true || leecher?.stalled == true {
                if let done = leecher {
                    if done.process.exitStatus == 0 {
                        result.loadDownloads += 1
                    } else {
                        printError(
                            "  a leecher of the large torrent failed: \(ManySeeder.lastLines(done.process))")
                    }
                    seeder.finish(done.process)
                    leecher = nil
                    previous = nil
                }
                guard let bind = next.next() else { break }
                leecher = try LoadLeecher(
                    torrent, peer: client.peer, bind: bind, run: seeder.run, number: result.loadDownloads)
            }
            guard let current = leecher, current.progress() != nil, current.downloading else {
                previous = nil
                seeder.run.stopIfInterrupted()
                usleep(20_000)
                continue
            }
            let reply = try client.rpc.call("torrent-get", ["fields": Self.listFields])
            latencies.append(reply.seconds)
            result.answerBytes = reply.bytes
            let now = current.progress()
            if let previous, let now {
                movedBytes += now.bytes - previous.bytes
                movedSeconds += now.seconds - previous.seconds
            }
            previous = now
            usleep(Self.sampleGapMicroseconds)
        }
        result.loadAnonymousKiB = ProcFS.anonymousResidentKiB(pid)
        result.leecherMegabytesPerSecond = movedSeconds > 0 ? movedBytes / movedSeconds / 1e6 : nil
        result.loadLatency = LatencySummary(seconds: latencies)
        if latencies.count < samples {
            result.note =
                "\(latencies.count) of \(samples) torrent-get samples under load: the leechers' addresses ran out"
        }
    }

    // MARK: Report

    static func secondsCell(_ value: Double?) -> String { value.map { Format.fixed($0, 2) } ?? "-" }

    static func millisecondsCell(_ value: Double?) -> String {
        value.map { Format.fixed($0 * 1000, 1) } ?? "-"
    }

    static func mebibytes(_ kib: Int?) -> String { kib.map { Format.fixed(Double($0) / 1024, 1) } ?? "-" }

    static func clientTable(_ results: [DaemonResult]) -> Table {
        var table = Table("client", "version", "result", "torrents", "leecher after first start")
        for result in results {
            table.add(
                result.client.rawValue, result.version, result.status, "\(result.torrents)",
                result.firstLeecherServed.map { $0 ? "ok" : "failed" } ?? "-")
        }
        return table
    }

    /// One row per measure, one column per daemon, then Potluck's over Transmission's and the target.
    static func table(_ results: [DaemonResult]) -> Table {
        let potluck = results.first { $0.client == .potluck }
        let transmission = results.first { $0.client == .transmission }
        let both = potluck != nil && transmission != nil
        var table = Table(
            headers: ["measure"] + results.map(\.client.rawValue) + (both ? ["potluck ÷ transmission"] : [])
                + ["target"])
        func row(
            _ name: String, target: String = "", _ value: (DaemonResult) -> Double?,
            _ cell: (Double?) -> String
        ) {
            let ratio =
                both ? [BenchReport.ratio(potluck.flatMap(value) ?? 0, transmission.flatMap(value))] : []
            table.add(cells: [name] + results.map { cell(value($0)) } + ratio + [target])
        }
        let count: (Double?) -> String = { $0.map { "\(Int($0))" } ?? "-" }
        let cpu: (Double?) -> String = { $0.map { Format.fixed($0, 2) } ?? "-" }
        let mib: (Double?) -> String = { mebibytes($0.map { Int($0) }) }
        row("first start: every torrent seeding, s", { $0.firstStartSeconds }, secondsCell)
        row("restart: RPC answers, s", { median($0.restarts.compactMap(\.answerSeconds)) }, secondsCell)
        row("restart: a leecher has a random torrent, s", { $0.medianServeSeconds }, secondsCell)
        row(
            "restart: RPC answers and serves, s", target: "≤ 0.1× transmission", { $0.medianServingSeconds },
            secondsCell)
        row(
            "restart: every torrent seeding, s",
            { median($0.restarts.compactMap(\.timing.allSeedingSeconds)) },
            secondsCell)
        row("threads", { $0.afterRestart.map { Double($0.threads) } }, count)
        row(
            "RssAnon, MiB", target: "≤ transmission", { $0.afterRestart.map { Double($0.anonymousKiB) } }, mib
        )
        row("descriptors", { $0.afterRestart.map { Double($0.descriptors) } }, count)
        row("idle CPU, s per 10 s", { $0.afterRestart?.cpuSecondsPer10s }, cpu)
        row("torrent-get p50 idle, ms", { $0.idleLatency?.p50 }, millisecondsCell)
        row("torrent-get p99 idle, ms", { $0.idleLatency?.p99 }, millisecondsCell)
        row("torrent-get p50 seeding, ms", { $0.loadLatency?.p50 }, millisecondsCell)
        row("torrent-get p99 seeding, ms", target: "≤ 50 ms", { $0.loadLatency?.p99 }, millisecondsCell)
        row(
            "torrent-get answer, KiB", { $0.answerBytes.map { Double($0) / 1024 } },
            { $0.map { Format.fixed($0, 0) } ?? "-" })
        row(
            "leecher download while sampling, MB/s", { $0.leecherMegabytesPerSecond },
            { $0.map { Format.fixed($0, 1) } ?? "-" })
        row("RssAnon while seeding, MiB", { $0.loadAnonymousKiB.map(Double.init) }, mib)
        return table
    }

    static func writeJSON(_ path: String, torrents: Int, loadMiB: Int, results: [DaemonResult]) {
        let object: [String: Any] = [
            "benchmark": "daemon", "date": ISO8601DateFormatter().string(from: Date()),
            "cores": HashPool.coreCount, "torrents": torrents, "load_mib": loadMiB,
            "torrent_get_fields": listFields,
            "results": results.map { result -> [String: Any] in
                [
                    "client": result.client.rawValue, "version": result.version, "result": result.status,
                    "note": result.note ?? NSNull(),
                    "first_start_seconds": result.firstStartSeconds ?? NSNull(),
                    "first_start_peak_descriptors": result.peakDescriptors,
                    "leecher_after_first_start": result.firstLeecherServed ?? NSNull(),
                    "after_first_start": result.afterFirstStart?.json ?? NSNull(),
                    "restarts": result.restarts.map { restart -> [String: Any] in
                        var row = restart.timing.json
                        row["rpc_answer_seconds"] = restart.answerSeconds ?? NSNull()
                        row["serving_seconds"] = restart.servingSeconds ?? NSNull()
                        return row
                    },
                    "restart_serving_median_seconds": result.medianServingSeconds ?? NSNull(),
                    "after_restart": result.afterRestart?.json ?? NSNull(),
                    "torrent_get_idle": result.idleLatency?.json ?? NSNull(),
                    "torrent_get_seeding": result.loadLatency?.json ?? NSNull(),
                    "torrent_get_answer_bytes": result.answerBytes ?? NSNull(),
                    "leecher_megabytes_per_second_while_sampling": result.leecherMegabytesPerSecond
                        ?? NSNull(),
                    "large_torrent_downloads_while_sampling": result.loadDownloads,
                    "rss_anon_kib_while_seeding": result.loadAnonymousKiB ?? NSNull(),
                ]
            },
        ]
        writeJSONReport(object, to: path)
    }
}

/// What `bench daemon` measured of one daemon.
struct DaemonResult {
    struct Restart {
        let timing: RestartTiming
        /// Seconds from the start until the RPC answered.
        let answerSeconds: Double?

        /// Seconds until the RPC answered and the leecher had its torrent, whichever came later.
        var servingSeconds: Double? {
            guard let answerSeconds, let serve = timing.serveSeconds else { return nil }
            return max(answerSeconds, serve)
        }
    }

    let client: ClientKind
    let version: String
    var status = "failed"
    var note: String?
    var torrents = 0
    var firstStartSeconds: Double?
    var peakDescriptors = 0
    var firstLeecherServed: Bool?
    var afterFirstStart: IdleReadings?
    var restarts: [Restart] = []
    var afterRestart: IdleReadings?
    var idleLatency: LatencySummary?
    var loadLatency: LatencySummary?
    /// The size of the last torrent-get answer.
    var answerBytes: Int?
    var leecherMegabytesPerSecond: Double?
    var loadDownloads = 0
    var loadAnonymousKiB: Int?

    init(client: ClientKind, version: String) {
        self.client = client
        self.version = version
    }

    var medianServeSeconds: Double? {
        restarts.contains { $0.timing.serveSeconds == nil }
            ? nil : median(restarts.compactMap(\.timing.serveSeconds))
    }

    var medianServingSeconds: Double? {
        restarts.contains { $0.servingSeconds == nil } ? nil : median(restarts.compactMap(\.servingSeconds))
    }
}
