import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import Hashing

struct BenchSwarm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm",
        abstract: "Build a local swarm (seeders and leechers of chosen clients) and measure it.",
        discussion: """
            Starts --seeders seeders of --seeder-client, then --leechers leechers at once, each client \
            from --leecher-client in turn, all downloading into empty folders; every copy is verified \
            byte for byte. Seeders listen on addresses of a harness namespace's root-side veth. With \
            --tracker, an opentracker serves the swarm: libtorrent and aria2 leechers find the seeders \
            and each other there; a Potluck seeder is announced by the benchmark from the address it \
            listens on, and Potluck leechers are given the seeders with --peer (the benchmark's torrent \
            names no tracker); Transmission leechers always get \
            the seeders through their driver's own tracker. Without --tracker, leechers are given the \
            seeders only. --runs repeats the whole case. Needs root.
            """)

    @OptionGroup var options: SwarmOptions

    @Option(help: "Seeders.")
    var seeders: Int = 2

    @Option(
        name: .customLong("seeder-client"),
        help: "The client that seeds (potluck, libtorrent, aria2; transmission with --link).")
    var seederClient: ClientKind = .libtorrent

    @Option(help: "Leechers, downloading at the same time.")
    var leechers: Int = 2

    @Option(
        name: .customLong("leecher-client"), parsing: .upToNextOption,
        help:
            "Clients that leech, given out to the leechers in turn (potluck, libtorrent, transmission, aria2)."
    )
    var leecherClients: [String] = ["potluck", "libtorrent"]

    @Flag(help: "Run an opentracker for the swarm.")
    var tracker = false

    @Option(help: "Times to run the whole case.")
    var runs: Int = 1

    func validate() throws {
        guard seeders >= 1 && seeders <= 16 else { throw ValidationError("--seeders must be in 1...16") }
        guard leechers >= 1 && leechers <= 32 else { throw ValidationError("--leechers must be in 1...32") }
        guard runs >= 1 && runs <= 20 else { throw ValidationError("--runs must be in 1...20") }
        guard seederClient != .transmission || options.link != nil else {
            throw ValidationError(
                "--seeder-client transmission needs --link (on loopback it seeds from a namespace of its own; "
                    + "bench compare measures it)")
        }
        let kinds = try parseClients(leecherClients, option: "--leecher-client")
        guard !kinds.isEmpty else { throw ValidationError("--leecher-client needs at least one client") }
        let transmissionLeechers = (0..<leechers).filter { kinds[$0 % kinds.count] == .transmission }.count
        guard transmissionLeechers <= 1 || options.link != nil else {
            throw ValidationError(
                "at most one Transmission leecher per swarm (it needs the namespace to itself)")
        }
    }

    func run() throws {
        let kinds = try parseClients(leecherClients, option: "--leecher-client")
        let run = try options.startRun("bench swarm")
        defer { run.cleanup() }
        let fixture = try options.fixture(run)
        for kind in Set(kinds + [seederClient]) where !fixture.isInstalled(kind) {
            printError("potluck: \(kind.rawValue) is \(fixture.notInstalled(kind))")
        }
        // Seeders listen on a namespace's root-side addresses (Transmission can reach those), or each on
        // a shaped link of its own with --link.
        var seederAddresses: [String] = []
        var trackerAddress: (address: String, netns: String?)
        if let shape = options.linkShape {
            try fixture.createLinks(
                peers: seeders + leechers + (tracker ? 1 : 0), rateBitsPerSecond: shape.rateBitsPerSecond,
                rttMilliseconds: shape.rttMilliseconds)
            let link = tracker ? try fixture.takeLinkPeer() : nil
            trackerAddress = (link?.address ?? "", link?.netns)
        } else {
            let namespace = try run.createNamespace(rootAddresses: seeders)
            seederAddresses = Array(namespace.addresses.suffix(seeders))
            trackerAddress = (namespace.addresses[0], nil)
        }
        let trackerURL =
            tracker
            ? try fixture.startTracker(address: trackerAddress.address, netns: trackerAddress.netns) : nil
        let what =
            "\(Format.bytes(options.sizeMiB << 20)) in \(Format.bytes(options.pieceKiB << 10)) pieces, "
            + "\(seeders) \(seederClient.rawValue) seeders, \(leechers) leechers, "
            + (tracker ? "opentracker" : "no tracker")
            + ", \(fixture.linkDescription), \(options.cacheDescription), "
            + "\(HashPool.coreCount) cores"
        var jsonRuns: [[String: Any]] = []
        var plotted: [TransferResult] = []
        var everyLeecher: [TransferResult] = []
        for round in 1...runs {
            let (leecherResults, seederResults) = try runCase(
                fixture, kinds: kinds, seederAddresses: seederAddresses, tracker: trackerURL)
            print("Swarm, run \(round) of \(runs): \(what)\n")
            print(BenchReport.leecherTable(leecherResults).rendered)
            var table = Table("seeder", "version", "result", "CPU s", "peak RSS")
            for seeder in seederResults {
                table.add(
                    seeder.label, seeder.version, seeder.status,
                    seeder.ok ? Format.fixed(seeder.cpuSeconds, 2) : "-",
                    seeder.ok ? Format.size(Int64(seeder.peakResidentKiB) * 1024) : "-")
            }
            print()
            print(table.rendered)
            print()
            jsonRuns.append([
                "run": round, "leechers": leecherResults.map { BenchReport.json($0, among: leecherResults) },
                "seeders": seederResults.map { BenchReport.json($0, among: seederResults) },
            ])
            if round == 1 { plotted = leecherResults }
            everyLeecher += leecherResults
        }
        let summary = BenchReport.medians(everyLeecher)
        if runs > 1 {
            print("Medians over \(runs) runs, per client (of its leechers that succeeded)\n")
            print(BenchReport.summaryTable(summary).rendered)
        }
        if let json = options.placement.json {
            let object: [String: Any] = [
                "benchmark": "swarm", "date": ISO8601DateFormatter().string(from: Date()),
                "cores": HashPool.coreCount, "payload_bytes": options.sizeMiB << 20,
                "piece_bytes": options.pieceKiB << 10, "seeders": seeders,
                "seeder_client": seederClient.rawValue,
                "leechers": leechers, "tracker": tracker, "cache": options.cache.rawValue, "runs": jsonRuns,
                "summary": summary.map { row -> [String: Any] in
                    var object: [String: Any] = [
                        "client": row.client.rawValue, "ok": row.ok, "total": row.total,
                    ]
                    if row.ok > 0 {
                        object["megabytes_per_second"] = row.megabytesPerSecond
                        object["cpu_seconds_per_gib"] = row.cpuSecondsPerGiB
                        object["peak_rss_kib"] = row.peakResidentKiB
                        if let first = row.firstPieceSeconds { object["first_piece_seconds"] = first }
                    }
                    return object
                },
            ]
            if let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            {
                if !FileManager.default.createFile(atPath: json, contents: data) {
                    printError("potluck: cannot write \(json)")
                }
            }
        }
        if let plot = options.plot {
            BenchReport.writePlot(
                plot, title: "potluck bench swarm: \(what)", panels: [("Leechers, run 1", plotted)])
        }
    }

    /// One swarm: seeders up, leechers all at once, everything stopped afterwards.
    private func runCase(
        _ fixture: SwarmFixture, kinds: [ClientKind], seederAddresses: [String], tracker: String?
    ) throws -> (leechers: [TransferResult], seeders: [TransferResult]) {
        fixture.prepareCache()
        var started: [SwarmFixture.Seeder] = []
        defer { started.forEach(fixture.stop) }
        var seederResults: [TransferResult] = []
        let shaped = fixture.links != nil
        // Links are handed out afresh for each run: the namespaces of the last one are reused.
        let saved = fixture.links
        defer { fixture.restoreLinks(saved) }
        if fixture.isInstalled(seederClient) {
            printError("starting \(seeders) \(seederClient.rawValue) seeders...")
            for index in 0..<seeders {
                let link = shaped ? try fixture.takeLinkPeer() : nil
                started.append(
                    try fixture.startSeeder(
                        seederClient, address: link?.address ?? seederAddresses[index], tracker: tracker,
                        trustData: true, netns: link?.netns))
            }
        }
        let peers = started.map(\.peer)
        let cpuBefore = started.map { ProcFS.cpuSeconds($0.pid) ?? 0 }
        var leecherRows: [TransferResult?] = []
        var watched: [SwarmFixture.Leecher] = []
        for index in 0..<leechers {
            let kind = kinds[index % kinds.count]
            let label = "\(kind.rawValue)-\(index + 1)"
            let needsTracker = shaped && fixture.needsTrackerOnLinks(kind) && tracker == nil
            guard fixture.isInstalled(kind), !started.isEmpty, !needsTracker else {
                var missing = TransferResult(
                    role: .leecher, client: kind, version: fixture.version(kind), label: label)
                missing.status =
                    started.isEmpty
                    ? "no seeders"
                    : !fixture.isInstalled(kind)
                        ? fixture.notInstalled(kind)
                        : "not run: with --link it finds peers only on a tracker (add --tracker)"
                leecherRows.append(missing)
                continue
            }
            do {
                // Leechers that use the tracker find the seeders (and each other) there.
                let useTracker =
                    tracker != nil
                    && (kind == .libtorrent || kind == .aria2 || (shaped && kind == .transmission))
                let link = shaped ? try fixture.takeLinkPeer() : nil
                let leecher = try fixture.startLeecher(
                    kind, label: label, peers: useTracker ? [] : peers, tracker: useTracker ? tracker : nil,
                    bind: link?.address, netns: link?.netns)
                watched.append(leecher)
                leecherRows.append(nil)
            } catch {
                printError("\(label): \(error)")
                leecherRows.append(
                    TransferResult(role: .leecher, client: kind, version: fixture.version(kind), label: label)
                )
            }
        }
        var peaks = Array(repeating: 0, count: started.count)
        fixture.watch(watched, progressLabel: "swarm of \(leechers)") {
            for (index, seeder) in started.enumerated() {
                peaks[index] = max(peaks[index], ProcFS.peakResidentKiB(seeder.pid) ?? 0)
            }
        }
        for (index, seeder) in started.enumerated() {
            var measurement = TransferResult(
                role: .seeder, client: seeder.kind, version: fixture.version(seeder.kind),
                label: "\(seeder.kind.rawValue)-\(index + 1)")
            measurement.linkRateBitsPerSecond = fixture.links?.rateBitsPerSecond
            if let cpu = ProcFS.cpuSeconds(seeder.pid) {
                measurement.status = "ok"
                measurement.cpuSeconds = cpu - cpuBefore[index]
                measurement.peakResidentKiB = max(peaks[index], ProcFS.peakResidentKiB(seeder.pid) ?? 0)
            } else {
                measurement.status = "failed (exited)"
            }
            seederResults.append(measurement)
        }
        var results = watched.makeIterator()
        let leecherResults = leecherRows.map { row in
            row ?? results.next().map { fixture.result(of: $0, version: fixture.version($0.kind)) }!
        }
        return (leecherResults, seederResults)
    }
}
