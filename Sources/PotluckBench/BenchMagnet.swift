import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import Hashing

struct BenchMagnet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "magnet",
        abstract: "From a bare magnet link to the metadata and to the whole download, through a DHT lab.",
        discussion: """
            Starts a DHT of --nodes libtorrent sessions (Tests/Interop/dht_lab.py: each in a network \
            namespace of its own with a /24 of its own, all on one bridge that the root namespace reaches; \
            no tracker anywhere), the first seeding a --size-mib payload and announcing it. Then each \
            client in turn, told only the magnet link (infohash and name) and one other node, finds the \
            seeder through the DHT: `potluck download MAGNET --dht-bootstrap NODE` (its DHT table starts \
            empty), a libtorrent session (`dht_lab.py fetch`) and aria2c (`aria2.py magnet`, \
            --dht-entry-point; its metadata time is when its first file appears). Seconds are counted \
            from the client's start of looking: for Potluck from its engine's start (joining the DHT \
            included), for libtorrent from its session's start (its wait for the node to join, then from \
            adding the link), for aria2 from the process's start. Every copy is compared byte for byte.
            """)

    @Option(help: "libtorrent nodes in the lab.")
    var nodes = 16

    @Option(name: .customLong("size-mib"), help: "Payload in MiB.")
    var sizeMiB = 64

    @Option(help: "Times to measure each client.")
    var runs = 3

    @Option(help: "Seconds each download may take.")
    var timeout = 120

    @OptionGroup var placement: BenchPlacement

    func validate() throws {
        guard (4...128).contains(nodes) else { throw ValidationError("--nodes must be in 4...128") }
        guard (1...65536).contains(sizeMiB) else { throw ValidationError("--size-mib must be in 1...65536") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be in 1...20") }
        guard timeout >= 5 else { throw ValidationError("--timeout must be at least 5 seconds") }
    }

    struct Measurement {
        let run: Int
        let client: String
        var status = "failed"
        var metadataSeconds = 0.0
        var seconds = 0.0
        var ok: Bool { status == "ok" }
    }

    static let clients = ["potluck", "libtorrent", "aria2"]

    func run() throws {
        guard ClientKind.libtorrent.isInstalled else {
            printError("potluck: bench magnet needs libtorrent (apt-get install python3-libtorrent)")
            throw ExitCode(1)
        }
        // The lab's nodes run in network namespaces.
        let run = try placement.startRun("bench magnet", needsRoot: true)
        defer { run.cleanup() }
        let seedDirectory = run.workspace + "/seed"
        mkdir(seedDirectory, 0o700)
        let payload = seedDirectory + "/payload.bin"
        printError("writing a payload of \(Format.bytes(sizeMiB << 20)) and its torrent...")
        try BenchCreate.writePayload(payload, bytes: sizeMiB << 20, seed: 0x6D61_676E_6574)
        let torrent = run.workspace + "/payload.torrent"
        let created = try ExternalCommand.run(
            ExternalCommand.currentExecutable(), ["create", "--quiet", "--v1", "-o", torrent, payload],
            timeoutSeconds: 600)
        guard created.status == 0 else {
            throw ExternalCommand.Failure(description: "cannot create \(torrent)")
        }

        printError("starting a DHT of \(nodes) libtorrent nodes, the first seeding...")
        let lab = try run.python(
            "dht_lab.py", ["start", "--nodes", "\(nodes)", "--seed", torrent, seedDirectory], label: "dht-lab"
        )
        let ready = lab.waitForLog(timeoutSeconds: 120) { _ in lab.firstJSON }
        guard let ready, let labNodes = ready["nodes"] as? [String], let magnet = ready["magnet"] as? String,
            let rootAddress = ready["root_address"] as? String
        else {
            throw ExternalCommand.Failure(description: "the DHT lab did not start: \(lab.log.suffix(300))")
        }
        var results: [Measurement] = []
        for round in 1...runs {
            for (index, client) in Self.clients.enumerated() {
                // A node that does not seed, another for each client and run.
                let node = labNodes[1 + (round * Self.clients.count + index) % (labNodes.count - 1)]
                results.append(
                    measure(
                        client, round: round, magnet: magnet, node: node, rootAddress: rootAddress,
                        payload: payload, run: run))
                run.stopIfInterrupted()
            }
        }
        print(
            "A magnet link (infohash and name only) found through a DHT of \(nodes) libtorrent nodes, each in "
                + "a network namespace of its own, \(Format.bytes(sizeMiB << 20)) from one libtorrent seeder, "
                + "\(HashPool.coreCount) cores\n"
        )
        print(Self.runTable(results).rendered)
        print("\nMedians over \(runs) runs\n")
        print(Self.medianTable(results).rendered)
        if let json = placement.json { writeJSON(json, results) }
    }

    private func measure(
        _ client: String, round: Int, magnet: String, node: String, rootAddress: String, payload: String,
        run: BenchRun
    ) -> Measurement {
        var measurement = Measurement(run: round, client: client)
        let target = run.workspace + "/download-\(client)-\(round)"
        defer { ExternalCommand.removeTree(target) }
        printError("run \(round): \(client) through \(node)...")
        do {
            switch client {
            case "potluck":
                // A cache folder of its own: no DHT table kept from an earlier run.
                let cache = run.workspace + "/cache-\(round)"
                let result = try ExternalCommand.run(
                    "/usr/bin/env",
                    [
                        "XDG_CACHE_HOME=\(cache)", ExternalCommand.currentExecutable(), "download", "--quiet",
                        magnet,
                        "-o", target, "--dht-bootstrap", node,
                    ], timeoutSeconds: Double(timeout))
                guard result.status == 0, let line = result.standardOutput.split(separator: "\n").last,
                    let (metadata, total) = Self.times(in: String(line))
                else {
                    throw ExternalCommand.Failure(description: "potluck failed: \(result.standardOutput)")
                }
                measurement.metadataSeconds = metadata
                measurement.seconds = total
            case "aria2":
                guard ClientKind.aria2.isInstalled else {
                    measurement.status = "not installed (apt-get install aria2)"
                    return measurement
                }
                // In the root namespace, as Potluck: the lab's nodes see both at its root address
                // (the libtorrent leecher gets a namespace of its own from the lab).
                let result = try ExternalCommand.run(
                    "/usr/bin/python3",
                    [
                        run.harness + "/aria2.py", "magnet", magnet, target, "--dht-entry", node, "--bind",
                        rootAddress, "--timeout", "\(timeout)",
                    ], timeoutSeconds: Double(timeout + 30))
                let line = result.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
                guard result.status == 0,
                    let object = line.flatMap({
                        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                    }),
                    let metadata = object["metadata_seconds"] as? Double,
                    let total = object["seconds"] as? Double
                else {
                    throw ExternalCommand.Failure(description: "aria2 failed: \(result.standardOutput)")
                }
                measurement.metadataSeconds = metadata
                measurement.seconds = total
            default:
                let result = try ExternalCommand.run(
                    "/usr/bin/python3",
                    [
                        run.harness + "/dht_lab.py", "fetch", magnet, target, "--bootstrap", node,
                        "--timeout",
                        "\(timeout)",
                    ], timeoutSeconds: Double(timeout + 30))
                let line = result.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
                guard result.status == 0,
                    let object = line.flatMap({
                        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                    }),
                    let joined = object["bootstrap_seconds"] as? Double,
                    let metadata = object["metadata_seconds"] as? Double,
                    let total = object["seconds"] as? Double
                else {
                    throw ExternalCommand.Failure(description: "libtorrent failed: \(result.standardOutput)")
                }
                measurement.metadataSeconds = joined + metadata
                measurement.seconds = joined + total
            }
            let copy = target + "/payload.bin"
            guard SwarmFixture.sameContents(payload, copy) else {
                throw ExternalCommand.Failure(description: "\(client) got wrong data")
            }
            measurement.status = "ok"
        } catch {
            printError("run \(round), \(client): \(error)")
        }
        return measurement
    }

    /// The metadata's and the whole download's seconds from `potluck download`'s last line:
    /// `completed NAME: SIZE in T s (metadata after M s)`.
    static func times(in line: String) -> (metadata: Double, total: Double)? {
        guard let inRange = line.range(of: " in ", options: .backwards),
            let metadataRange = line.range(of: "(metadata after ")
        else { return nil }
        let total = Double(line[inRange.upperBound...].prefix { $0.isNumber || $0 == "." })
        let metadata = Double(line[metadataRange.upperBound...].prefix { $0.isNumber || $0 == "." })
        guard let total, let metadata else { return nil }
        return (metadata, total)
    }

    // MARK: Report

    static func runTable(_ results: [Measurement]) -> Table {
        var table = Table("run", "client", "result", "metadata s", "complete s")
        for result in results {
            guard result.ok else {
                table.add("\(result.run)", result.client, result.status, "-", "-")
                continue
            }
            table.add(
                "\(result.run)", result.client, "ok", Format.fixed(result.metadataSeconds, 3),
                Format.fixed(result.seconds, 2))
        }
        return table
    }

    /// Per client, the medians of its runs that succeeded, beside libtorrent's.
    static func medianTable(_ results: [Measurement]) -> Table {
        var table = Table(
            "client", "ok", "metadata s", "complete s", "metadata vs libtorrent", "complete vs libtorrent")
        let base = results.filter { $0.client == "libtorrent" && $0.ok }
        let baseMetadata = median(base.map(\.metadataSeconds))
        let baseTotal = median(base.map(\.seconds))
        for client in clients {
            let mine = results.filter { $0.client == client }
            let ok = mine.filter(\.ok)
            guard let metadata = median(ok.map(\.metadataSeconds)), let total = median(ok.map(\.seconds))
            else {
                let missing = mine.first { $0.status.hasPrefix("not installed") }
                table.add(client, missing?.status ?? "0/\(mine.count)", "-", "-", "-", "-")
                continue
            }
            table.add(
                client, "\(ok.count)/\(mine.count)", Format.fixed(metadata, 3), Format.fixed(total, 2),
                BenchReport.ratio(metadata, baseMetadata), BenchReport.ratio(total, baseTotal))
        }
        return table
    }

    private func writeJSON(_ path: String, _ results: [Measurement]) {
        let object: [String: Any] = [
            "benchmark": "magnet", "date": ISO8601DateFormatter().string(from: Date()),
            "cores": HashPool.coreCount, "nodes": nodes, "payload_bytes": sizeMiB << 20, "runs": runs,
            "results": results.map { result -> [String: Any] in
                var row: [String: Any] = [
                    "run": result.run, "client": result.client, "result": result.status,
                ]
                if result.ok {
                    row["metadata_seconds"] = result.metadataSeconds
                    row["seconds"] = result.seconds
                }
                return row
            },
        ]
        writeJSONReport(object, to: path)
    }
}
