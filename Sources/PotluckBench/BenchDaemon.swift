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
            over --idle-seconds (per 10 s) are read after --settle-seconds of quiet, after the first start and after \
            the last restart. Then torrent-get of every torrent with the fields `transmission-remote -l` \
            asks for (plus percentDone and peersConnected) is timed --samples times from this process, \
            first idle, then while libtorrent leechers download the large torrent from the daemon one \
            after another at full speed (samples are taken only while one is downloading, past the \
            first quarter of the torrent, by when the rate has stopped climbing). Transmission \
            listens on a harness veth address (it ignores peers at 127.x), which needs root.
            """)

    @Option(help: "Small torrents to make and seed.")
    var torrents = 1_000

    @OptionGroup var options: ManyOptions

    @Option(help: "torrent-get calls timed idle, and again while seeding.")
    var samples = 50

    @Option(name: .customLong("load-mib"), help: "Size of the torrent leechers download while sampling.")
    var loadMiB = 256

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
        guard (1...10_000).contains(samples) else { throw ValidationError("--samples must be in 1...10000") }
        guard (1...4096).contains(loadMiB) else { throw ValidationError("--load-mib must be in 1...4096") }
    }

    func run() throws {
        let run = try options.startRun("bench daemon with Transmission")
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
        let chosen = options.chosenTorrents(of: set)
        var results: [DaemonResult] = []
        for kind in options.kinds {
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
            if let note = result.common.note { print("\(result.common.client.rawValue): \(note)") }
            guard !result.common.life.restarts.isEmpty else { continue }
            let each = result.common.life.restarts.map { restart in
                "\(restart.torrent) \(Table.seconds(restart.servingSeconds))"
            }
            print(
                "\(result.common.client.rawValue) restarts, RPC answering and serving (s): \(each.joined(separator: ", "))"
            )
        }
        if let json = options.placement.json {
            Self.writeJSON(json, torrents: torrents, loadMiB: loadMiB, results: results)
        }
    }

    // MARK: One daemon

    private func measure(
        _ kind: ClientKind, set: ManyTorrents, load: ManyTorrents, run: BenchRun, chosen: [String]
    ) -> DaemonResult {
        var result = DaemonResult(client: kind, version: kind.isInstalled ? kind.version : "-")
        result.common.torrents = set.count
        guard kind.isInstalled else {
            result.common.status = "not installed (apt-get install \(kind.debianPackage))"
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
            result.common.note = "\(error)"
            return result
        }
        let seeder = ManySeeder(client, run: run, set: set)
        defer { seeder.stop() }
        let expected = additions.count
        do {
            try seeder.measureLife(
                kind.rawValue, expected: expected, chosen: chosen, options: options, into: &result.common.life
            )
            printError("\(kind.rawValue): timing torrent-get of \(expected) torrents, idle...")
            result.idleLatency = try sampleTorrentGet(client, count: samples)
            printError("\(kind.rawValue): timing torrent-get while leechers download \(loadMiB) MiB...")
            try sampleUnderLoad(
                client, seeder: seeder, torrent: load.torrentPath(load.name(0)), binds: loadBinds,
                into: &result)
            let complete = result.common.life.served && result.loadLatency != nil
            result.common.status = complete ? "ok" : "failed"
        } catch {
            printError("\(kind.rawValue): \(error)")
            result.common.note = "\(error)"
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
            let client = try RPCDaemonClient(
                peer: setup.peer, leecherBind: setup.leecherAddresses[0], rpc: setup.rpc, additions: additions
            ) { try setup.spawn(run: run) }
            return (client, Array(setup.leecherAddresses.dropFirst()))
        }
        let rpc = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let peer = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let state = run.workspace + "/potluck-daemon"
        let client = try RPCDaemonClient(peer: peer, leecherBind: nil, rpc: rpc, additions: additions) {
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
    /// another (each from the next of `binds`). Samples are taken only while a leecher is past the
    /// first quarter of the torrent and its verified bytes grew in the last 0.3 s: a new leecher may
    /// wait for an unchoke first (Transmission unchokes every 10 s), then the rate climbs. Also the
    /// leechers' download rate over those stretches, and the daemon's RssAnon at the end.
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
        func account(_ leecher: LoadLeecher) {
            guard let transfer = leecher.transfer() else { return }
            movedBytes += transfer.bytes
            movedSeconds += transfer.seconds
        }
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
                    account(done)
                    leecher = nil
                }
                guard let bind = next.next() else { break }
                leecher = try LoadLeecher(
                    torrent, bytes: loadMiB << 20, peer: client.peer, bind: bind, run: seeder.run,
                    number: result.loadDownloads)
            }
            guard let current = leecher, current.progress() != nil, current.downloading else {
                seeder.run.stopIfInterrupted()
                usleep(20_000)
                continue
            }
            let reply = try client.rpc.call("torrent-get", ["fields": Self.listFields])
            latencies.append(reply.seconds)
            result.answerBytes = reply.bytes
            usleep(Self.sampleGapMicroseconds)
        }
        result.loadAnonymousKiB = ProcFS.anonymousResidentKiB(pid)
        if let leecher { account(leecher) }
        result.leecherMegabytesPerSecond = movedSeconds > 0 ? movedBytes / movedSeconds / 1e6 : nil
        result.loadLatency = LatencySummary(seconds: latencies)
        if latencies.count < samples {
            result.common.note =
                "\(latencies.count) of \(samples) torrent-get samples under load: the leechers' addresses ran out"
        }
    }

    // MARK: Report

    static func milliseconds(_ value: Double?) -> String { value.map { Format.fixed($0 * 1000, 1) } ?? "-" }

    static func clientTable(_ results: [DaemonResult]) -> Table {
        var table = Table("client", "version", "result", "torrents", "leecher after first start")
        for result in results {
            table.add(
                result.common.client.rawValue, result.common.version, result.common.status,
                "\(result.common.torrents)",
                result.common.life.firstLeecherServed.map { $0 ? "ok" : "failed" } ?? "-")
        }
        return table
    }

    /// One row per measure, one column per daemon, then Potluck's over Transmission's and the target.
    static func table(_ results: [DaemonResult]) -> Table {
        let potluck = results.first { $0.common.client == .potluck }
        let transmission = results.first { $0.common.client == .transmission }
        let both = potluck != nil && transmission != nil
        var table = Table(
            headers: ["measure"] + results.map(\.common.client.rawValue)
                + (both ? ["potluck ÷ transmission"] : [])
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
        let mib: (Double?) -> String = { Table.mebibytes(kib: $0.map { Int($0) }) }
        row("first start: every torrent seeding, s", { $0.common.life.firstStartSeconds }, Table.seconds)
        row("restart: RPC answers, s", { $0.common.life.median(\.answerSeconds) }, Table.seconds)
        row(
            "restart: a leecher has a random torrent, s", { $0.common.life.median(\.serveSeconds) },
            Table.seconds)
        row(
            "restart: RPC answers and serves, s", target: "≤ 0.1× transmission",
            { $0.common.life.median(\.servingSeconds) }, Table.seconds)
        row(
            "restart: every torrent seeding, s", { $0.common.life.median(\.allSeedingSeconds) }, Table.seconds
        )
        row("threads", { $0.common.life.afterRestart.map { Double($0.threads) } }, count)
        row(
            "RssAnon, MiB", target: "≤ transmission",
            { $0.common.life.afterRestart.map { Double($0.anonymousKiB) } },
            mib)
        row("descriptors", { $0.common.life.afterRestart.map { Double($0.descriptors) } }, count)
        row("idle CPU, s per 10 s", { $0.common.life.afterRestart?.cpuSecondsPer10s }, cpu)
        row("torrent-get p50 idle, ms", { $0.idleLatency?.p50 }, milliseconds)
        row("torrent-get p99 idle, ms", { $0.idleLatency?.p99 }, milliseconds)
        row("torrent-get p50 seeding, ms", { $0.loadLatency?.p50 }, milliseconds)
        row("torrent-get p99 seeding, ms", target: "≤ 50 ms", { $0.loadLatency?.p99 }, milliseconds)
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
                result.common.life.json.merging([
                    "client": result.common.client.rawValue, "version": result.common.version,
                    "result": result.common.status,
                    "note": result.common.note ?? NSNull(),
                    "torrent_get_idle": result.idleLatency?.json ?? NSNull(),
                    "torrent_get_seeding": result.loadLatency?.json ?? NSNull(),
                    "torrent_get_answer_bytes": result.answerBytes ?? NSNull(),
                    "leecher_megabytes_per_second_while_sampling": result.leecherMegabytesPerSecond
                        ?? NSNull(),
                    "large_torrent_downloads_while_sampling": result.loadDownloads,
                    "rss_anon_kib_while_seeding": result.loadAnonymousKiB ?? NSNull(),
                ]) { _, daemon in daemon }
            },
        ]
        writeJSONReport(object, to: path)
    }
}

/// What `bench daemon` measured of one daemon.
struct DaemonResult {
    /// What `bench many` measures too.
    var common: ManyResult
    var idleLatency: LatencySummary?
    var loadLatency: LatencySummary?
    /// The size of the last torrent-get answer.
    var answerBytes: Int?
    var leecherMegabytesPerSecond: Double?
    var loadDownloads = 0
    var loadAnonymousKiB: Int?

    init(client: ClientKind, version: String) { common = ManyResult(client: client, version: version) }
}
