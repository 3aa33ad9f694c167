import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import Hashing

/// Options every swarm benchmark shares.
struct SwarmOptions: ParsableArguments {
    @Option(
        name: .customLong("size-mib"), help: "Payload size in MiB (default: 256; 1024 for bench download).")
    var payloadMiB: Int?

    var sizeMiB: Int { payloadMiB ?? 256 }

    @Option(name: .customLong("piece-kib"), help: "Piece size in KiB.")
    var pieceKiB: Int = 1024

    @Option(help: "Seconds each client may take.")
    var timeout: Int = 300

    @Flag(
        help: "Drop the payload's pages from the page cache before each transfer (default), or read it once.")
    var cache: CacheMode = .cold

    @Flag(
        help: """
            Potluck leechers fetch pieces in order (download --sequential): what streaming order costs \
            against rarest first, measured by running the same case with and without it.
            """)
    var sequential = false

    @OptionGroup var placement: BenchPlacement

    @Option(help: "Draw throughput over time per client to this SVG file.")
    var plot: String?

    @Option(
        name: .customLong("keep-logs"),
        help: ArgumentHelp(
            "Copy every client's log into this folder at the end (numbered in start order); Potluck's with "
                + "--verbose (what each peer did), to find out why a run was slow.",
            valueName: "dir"))
    var keepLogs: String?

    @Option(
        help: ArgumentHelp(
            "Put every peer in its own network namespace, linked through a bridge at RATE bits/s (1g, 100m) "
                + "with RTT ms of delay where the kernel has netem: RATE[,RTT].",
            valueName: "rate[,rtt]"))
    var link: String?

    /// --link parsed: bits per second and round-trip milliseconds.
    var linkShape: (rateBitsPerSecond: Double, rttMilliseconds: Double)? {
        guard let link else { return nil }
        let parts = link.lowercased().split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        var rateText = String(parts[0])
        for suffix in ["bit", "bps"] where rateText.hasSuffix(suffix) { rateText.removeLast(suffix.count) }
        let scale: Double
        switch rateText.last {
        case "k": scale = 1e3
        case "m": scale = 1e6
        case "g": scale = 1e9
        default: scale = 1
        }
        if scale != 1 { rateText.removeLast() }
        guard let rate = Double(rateText), rate * scale >= 1e5 else { return nil }
        var rtt = 0.0
        if parts.count == 2 {
            var rttText = String(parts[1])
            if rttText.hasSuffix("ms") { rttText.removeLast(2) }
            guard let value = Double(rttText), value >= 0, value <= 10_000 else { return nil }
            rtt = value
        }
        return (rate * scale, rtt)
    }

    enum CacheMode: String, EnumerableFlag {
        case cold, warm
    }

    func validate() throws {
        guard (payloadMiB ?? 1) > 0 && (payloadMiB ?? 1) <= 1 << 20 else {
            throw ValidationError("--size-mib must be in 1...1048576")
        }
        guard pieceKiB >= 16 && pieceKiB <= 16384 && pieceKiB & (pieceKiB - 1) == 0 else {
            throw ValidationError("--piece-kib must be a power of two from 16 to 16384")
        }
        guard timeout >= 5 else { throw ValidationError("--timeout must be at least 5 seconds") }
        if let link, linkShape == nil {
            throw ValidationError(
                "--link \(link): expected RATE[,RTT] such as 1g or 1g,20 (bits/s of at least 100k; ms)")
        }
    }

    /// Root, the harness and a fresh run; throws with a clear message otherwise.
    func startRun(_ what: String) throws -> BenchRun {
        let run = try placement.startRun(what, needsRoot: true)
        run.keepLogsIn = keepLogs
        return run
    }

    func fixture(_ run: BenchRun) throws -> SwarmFixture {
        let fixture = try SwarmFixture(
            run: run, payloadBytes: sizeMiB << 20, pieceBytes: pieceKiB << 10,
            timeoutSeconds: Double(timeout),
            coldCache: cache == .cold)
        if sequential { fixture.potluckDownloadArguments = ["--sequential"] }
        if keepLogs != nil {
            fixture.potluckDownloadArguments.append("--verbose")
            fixture.potluckSeedArguments.append("--verbose")
        }
        return fixture
    }

    var cacheDescription: String {
        cache == .cold ? "cold cache (payload evicted with posix_fadvise before each transfer)" : "warm cache"
    }
}

/// Parses client names, refusing unknown ones with the list of known ones.
func parseClients(_ names: [String], option: String) throws -> [ClientKind] {
    try names.flatMap { $0.split(separator: ",") }.map { name in
        guard let kind = ClientKind(rawValue: String(name)) else {
            throw ValidationError(
                "\(option): unknown client \(name); known: \(ClientKind.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return kind
    }
}

struct BenchCompare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "The same swarm downloaded, then seeded, by each installed client in turn.",
        discussion: """
            Leeching: --seeders libtorrent seeders serve the payload and each client downloads it in \
            turn into an empty folder. Seeding: --leechers libtorrent leechers (one process) download \
            it from a Potluck seeder, then a libtorrent one, then a Transmission one. Every copy is \
            compared byte for byte with the payload; a client that fails, times out or is not \
            installed is shown as such. MB/s is payload over wall time; CPU is user+system time \
            (rusage) of the client's process; peak RSS is its VmHWM (ru_maxrss). First piece: seconds \
            from the client's start until it has a verified piece: as libtorrent and Transmission report \
            it (their drivers poll every 100 ms); for Potluck, which writes only verified pieces, and \
            aria2, when a piece's worth of payload is on disk (allocated blocks, sampled every 100 ms). \
            The same samples draw --plot. Needs root.
            """)

    @OptionGroup var options: SwarmOptions

    @Option(help: "libtorrent seeders for the leecher comparison.")
    var seeders: Int = 4

    @Option(help: "libtorrent leechers for the seeding comparison.")
    var leechers: Int = 8

    @Option(
        parsing: .upToNextOption,
        help: "Clients to measure as leechers, in order (potluck, libtorrent, transmission, aria2).")
    var clients: [String] = ["potluck", "libtorrent", "transmission", "aria2"]

    @Option(
        name: .customLong("seeder-clients"), parsing: .upToNextOption,
        help: "Clients to measure as seeders, in order (potluck, libtorrent, transmission, aria2).")
    var seederClients: [String] = ["potluck", "libtorrent", "transmission"]

    @Flag(help: "Only the leecher comparison.")
    var leechOnly = false

    @Flag(help: "Only the seeding comparison.")
    var seedOnly = false

    func validate() throws {
        guard seeders >= 1 && seeders <= 16 else { throw ValidationError("--seeders must be in 1...16") }
        guard leechers >= 1 && leechers <= 64 else { throw ValidationError("--leechers must be in 1...64") }
        guard !(leechOnly && seedOnly) else {
            throw ValidationError("--leech-only and --seed-only exclude each other")
        }
        _ = try parseClients(clients, option: "--clients")
        _ = try parseClients(seederClients, option: "--seeder-clients")
    }

    func run() throws {
        try Self.execute(
            options, seeders: seeders, leechers: leechers,
            clients: try parseClients(clients, option: "--clients"),
            seederClients: leechOnly ? [] : try parseClients(seederClients, option: "--seeder-clients"),
            leech: !seedOnly)
    }

    static func execute(
        _ options: SwarmOptions, seeders: Int, leechers: Int, clients: [ClientKind],
        seederClients: [ClientKind],
        leech: Bool
    ) throws {
        let run = try options.startRun("bench compare")
        defer { run.cleanup() }
        let fixture = try options.fixture(run)
        if let shape = options.linkShape {
            // Seeders, a leecher and a tracker; a seeder and its leechers.
            let peers = (leech ? seeders + 2 : 0) + (seederClients.isEmpty ? 0 : leechers + 1)
            try fixture.createLinks(
                peers: peers, rateBitsPerSecond: shape.rateBitsPerSecond,
                rttMilliseconds: shape.rttMilliseconds)
        }
        var leecherResults: [TransferResult] = []
        var seederResults: [TransferResult] = []
        if leech {
            leecherResults = try leecherComparison(fixture, clients: clients, seeders: seeders)
        }
        if !seederClients.isEmpty {
            seederResults = seedingComparison(fixture, seeders: seederClients, leechers: leechers)
        }
        let what =
            "\(Format.bytes(options.sizeMiB << 20)) in \(Format.bytes(options.pieceKiB << 10)) pieces, "
            + fixture.linkDescription
        if !leecherResults.isEmpty {
            print(
                "Leecher comparison: \(what) from \(seeders) libtorrent seeders, \(options.cacheDescription), "
                    + "\(HashPool.coreCount) cores\n")
            print(BenchReport.leecherTable(leecherResults).rendered)
        }
        if !seederResults.isEmpty {
            if !leecherResults.isEmpty { print() }
            print(
                "Seeding comparison: \(what) to \(leechers) libtorrent leechers each, \(options.cacheDescription), "
                    + "\(HashPool.coreCount) cores\n")
            print(BenchReport.seederTable(seederResults).rendered)
        }
        let header: [String: Any] = [
            "benchmark": "compare", "payload_bytes": options.sizeMiB << 20,
            "piece_bytes": options.pieceKiB << 10,
            "seeders": seeders, "leechers": leechers, "cache": options.cache.rawValue,
            "link": fixture.links.map { links -> [String: Any] in
                [
                    "rate_bits_per_second": links.rateBitsPerSecond, "rtt_ms": links.rttMilliseconds,
                    "delay_applied": links.delayApplied, "note": links.note,
                ]
            } ?? "loopback",
        ]
        if let json = options.placement.json {
            BenchReport.writeJSON(json, header: header, leechers: leecherResults, seeders: seederResults)
        }
        if let plot = options.plot {
            BenchReport.writePlot(
                plot, title: "potluck bench compare: \(what)",
                panels: [
                    ("Downloading from \(seeders) libtorrent seeders", leecherResults),
                    ("Seeding to \(leechers) libtorrent leechers (aggregate)", seederResults),
                ])
        }
    }

    /// Each client downloads the payload in turn from `seeders` libtorrent seeders. The seeders listen
    /// on addresses of a namespace's root-side veth, so Transmission (which ignores 127.x peers and
    /// keeps one peer per address) can take part from inside that namespace.
    static func leecherComparison(
        _ fixture: SwarmFixture, clients: [ClientKind], seeders: Int
    ) throws -> [TransferResult] {
        // Shaped: every seeder on a link of its own, the leechers in turn on one more.
        let seederLinks =
            try fixture.links == nil ? [] : (0..<seeders).map { _ in try fixture.takeLinkPeer() }
        let leecherLink = try fixture.links == nil ? nil : fixture.takeLinkPeer()
        // Transmission and aria2 cannot be handed peers on a shaped link: the seeders announce to a
        // tracker on a link of its own, where those two find them.
        var tracker: String?
        if fixture.links != nil && clients.contains(where: fixture.needsTrackerOnLinks) {
            let link = try fixture.takeLinkPeer()
            tracker = try fixture.startTracker(address: link.address, netns: link.netns)
        }
        let addresses =
            fixture.links == nil
            ? Array(try fixture.run.createNamespace(rootAddresses: seeders).addresses.suffix(seeders))
            : seederLinks.map(\.address)
        printError("starting \(seeders) libtorrent seeders...")
        var peers: [String] = []
        var started: [SwarmFixture.Seeder] = []
        defer { started.forEach(fixture.stop) }
        for (index, address) in addresses.enumerated() {
            let seeder = try fixture.startSeeder(
                .libtorrent, address: address, tracker: tracker, trustData: true,
                netns: seederLinks.isEmpty ? nil : seederLinks[index].netns)
            started.append(seeder)
            peers.append(seeder.peer)
        }
        var results: [TransferResult] = []
        for client in clients {
            guard fixture.isInstalled(client) else {
                var missing = TransferResult(role: .leecher, client: client, version: "-")
                missing.status = fixture.notInstalled(client)
                printError("\(client.rawValue): \(missing.status)")
                results.append(missing)
                continue
            }
            fixture.prepareCache()
            do {
                let viaTracker = leecherLink != nil && fixture.needsTrackerOnLinks(client)
                let leecher = try fixture.startLeecher(
                    client, label: client.rawValue, peers: viaTracker ? [] : peers,
                    tracker: viaTracker ? tracker : nil, bind: leecherLink?.address, netns: leecherLink?.netns
                )
                fixture.watch([leecher], progressLabel: "\(client.rawValue) downloading")
                results.append(fixture.result(of: leecher, version: fixture.version(client)))
            } catch {
                printError("\(client.rawValue): \(error)")
                results.append(
                    TransferResult(role: .leecher, client: client, version: fixture.version(client)))
            }
        }
        return results
    }

    /// `leechers` libtorrent leechers download the payload from one seeder of each kind in turn.
    /// CPU and memory are the seeder's own, read from /proc before and after the transfer. On loopback
    /// the leechers are sessions of one process; with --link each is a process on a link of its own.
    static func seedingComparison(
        _ fixture: SwarmFixture, seeders: [ClientKind], leechers: Int
    ) -> [TransferResult] {
        var results: [TransferResult] = []
        let seederLink = fixture.links == nil ? nil : try? fixture.takeLinkPeer()
        let leecherLinks =
            fixture.links == nil ? [] : (0..<leechers).compactMap { _ in try? fixture.takeLinkPeer() }
        for kind in seeders {
            var measurement = TransferResult(role: .seeder, client: kind, version: fixture.version(kind))
            measurement.leechers = leechers
            guard fixture.isInstalled(kind) && fixture.isInstalled(.libtorrent) else {
                measurement.status = fixture.notInstalled(fixture.isInstalled(kind) ? .libtorrent : kind)
                printError("\(kind.rawValue): \(measurement.status)")
                results.append(measurement)
                continue
            }
            fixture.prepareCache()
            do {
                printError("starting a \(kind.rawValue) seeder...")
                let seeder = try fixture.startSeeder(
                    kind, address: seederLink?.address ?? "127.0.0.1", clientAddresses: leechers,
                    netns: seederLink?.netns)
                defer { fixture.stop(seeder) }
                let cpuBefore = ProcFS.cpuSeconds(seeder.pid) ?? 0
                var group: [SwarmFixture.Leecher] = []
                if leecherLinks.isEmpty {
                    // Transmission keeps one peer per address: each leecher gets its own.
                    let binds = kind == .transmission ? Array(seeder.clientAddresses.prefix(leechers)) : []
                    group = [
                        try fixture.startLibtorrentLeechers(count: leechers, peer: seeder.peer, binds: binds)
                    ]
                } else {
                    for (index, link) in leecherLinks.enumerated() {
                        group.append(
                            try fixture.startLeecher(
                                .libtorrent, label: "leecher-\(index + 1)", peers: [seeder.peer],
                                bind: link.address,
                                netns: link.netns))
                    }
                }
                var peak = 0
                fixture.watch(group, progressLabel: "\(kind.rawValue) seeding to \(leechers)") {
                    peak = max(peak, ProcFS.peakResidentKiB(seeder.pid) ?? 0)
                }
                let cpuAfter = ProcFS.cpuSeconds(seeder.pid)
                peak = max(peak, ProcFS.peakResidentKiB(seeder.pid) ?? 0)
                // The leechers' own clocks: from their sessions' start until the last one completed.
                let first = group[0].process.started
                let finished = group.map { leecher in
                    seconds(leecher.process.started - first)
                        + ((leecher.process.lastJSON?["seconds"] as? Double) ?? 0)
                }
                let downloaded = group.map { fixture.result(of: $0, version: fixture.version(.libtorrent)) }
                let samples = SwarmFixture.sum(downloaded.map(\.samples))
                let failed = downloaded.first { !$0.ok }
                measurement.status =
                    failed?.status ?? (cpuAfter == nil ? "failed (the seeder exited)" : "ok")
                measurement.bytes = downloaded.reduce(0) { $0 + $1.bytes }
                measurement.wallSeconds = finished.max() ?? 0
                measurement.cpuSeconds = (cpuAfter ?? cpuBefore) - cpuBefore
                measurement.peakResidentKiB = peak
                measurement.samples = samples
                measurement.progressSource = downloaded.first?.progressSource ?? "disk"
                measurement.linkRateBitsPerSecond = seederLink == nil ? nil : fixture.links?.rateBitsPerSecond
            } catch {
                printError("\(kind.rawValue) seeder: \(error)")
            }
            results.append(measurement)
        }
        return results
    }
}
