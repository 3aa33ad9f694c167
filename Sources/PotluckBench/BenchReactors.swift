import ArgumentParser
import CommandSupport
import Foundation
import Glibc
import Hashing

struct BenchReactors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reactors",
        abstract: "Several torrents seeded at once by one potluck process, on 1 and then 2 reactor threads.",
        discussion: """
            Writes --torrents payloads and their torrents, then for each --reactors count starts one \
            `potluck seed` of all of them (--reactors N) and one libtorrent process with a leecher \
            session per torrent, all downloading at once over loopback. Upload MB/s: every torrent's \
            payload over the leechers' time from their start until the last one completed. CPU s/GiB: \
            the seeder's user+system CPU (/proc) over the transfer, per GiB served. Every copy is \
            compared byte for byte with its payload. Each run measures every --reactors count in turn; \
            the last table gives the medians over --runs.
            """)

    @Option(help: "Torrents seeded at once, each to its own leecher.")
    var torrents = 8

    @Option(parsing: .upToNextOption, help: "Reactor counts to measure, in order.")
    var reactors: [Int] = [1, 2]

    @Option(name: .customLong("size-mib"), help: "Payload of each torrent in MiB.")
    var sizeMiB = 128

    @Option(name: .customLong("piece-kib"), help: "Piece size in KiB.")
    var pieceKiB = 1024

    @Option(help: "Times to measure every reactor count.")
    var runs = 3

    @Option(help: "Seconds each transfer may take.")
    var timeout = 300

    @Flag(
        help:
            "Drop the payloads' pages from the page cache before each transfer (default), or read them once.")
    var cache: SwarmOptions.CacheMode = .cold

    @OptionGroup var placement: BenchPlacement

    func validate() throws {
        guard (1...64).contains(torrents) else { throw ValidationError("--torrents must be in 1...64") }
        guard !reactors.isEmpty, reactors.allSatisfy({ (1...256).contains($0) }) else {
            throw ValidationError("--reactors takes counts in 1...256")
        }
        guard (1...1 << 20).contains(sizeMiB) else {
            throw ValidationError("--size-mib must be in 1...1048576")
        }
        guard pieceKiB >= 16 && pieceKiB <= 16384 && pieceKiB & (pieceKiB - 1) == 0 else {
            throw ValidationError("--piece-kib must be a power of two from 16 to 16384")
        }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be in 1...20") }
        guard timeout >= 5 else { throw ValidationError("--timeout must be at least 5 seconds") }
    }

    /// One transfer: every torrent to its leecher at once, from a seeder on `reactors` threads.
    struct Measurement {
        let run: Int
        let reactors: Int
        var status = "failed"
        var bytes: Int64 = 0
        var seconds = 0.0
        var cpuSeconds = 0.0
        var peakResidentKiB = 0
        var threads = 0

        var ok: Bool { status == "ok" }
        var megabytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds / 1e6 : 0 }
        var cpuSecondsPerGiB: Double { bytes > 0 ? cpuSeconds / (Double(bytes) / Double(1 << 30)) : 0 }
    }

    /// The payloads, their torrents and where they are seeded from.
    struct Fixture {
        let seedDirectory: String
        let payloads: [String]
        let torrents: [String]
    }

    func run() throws {
        guard ClientKind.libtorrent.isInstalled else {
            printError(
                "potluck: bench reactors needs libtorrent's leechers (apt-get install python3-libtorrent)")
            throw ExitCode(1)
        }
        let run = try placement.startRun("bench reactors", needsRoot: false)
        defer { run.cleanup() }
        let fixture = try makeFixture(run)
        var results: [Measurement] = []
        for round in 1...runs {
            for count in reactors {
                results.append(measure(count, round: round, fixture: fixture, run: run))
                run.stopIfInterrupted()
            }
        }
        let cacheDescription =
            cache == .cold
            ? "cold cache (payloads evicted with posix_fadvise before each transfer)" : "warm cache"
        let what =
            "\(torrents) torrents of \(Format.bytes(sizeMiB << 20)) (\(Format.bytes(pieceKiB << 10)) pieces)"
        print(
            "Seeding \(what) at once from one potluck seed, one libtorrent leecher each, loopback, "
                + "\(cacheDescription), \(HashPool.coreCount) cores\n")
        print(Self.runTable(results).rendered)
        print("\nMedians over \(runs) runs\n")
        print(Self.medianTable(results, order: reactors).rendered)
        if let json = placement.json { writeJSON(json, results) }
    }

    private func makeFixture(_ run: BenchRun) throws -> Fixture {
        let seedDirectory = run.workspace + "/seed"
        mkdir(seedDirectory, 0o700)
        printError("writing \(torrents) payloads of \(Format.bytes(sizeMiB << 20)) and their torrents...")
        var payloads: [String] = []
        var torrentFiles: [String] = []
        for index in 1...torrents {
            let payload = seedDirectory + "/payload-\(index).bin"
            // Content of its own, so no two torrents share pieces.
            try BenchCreate.writePayload(
                payload, bytes: sizeMiB << 20, seed: 0x9E37_79B9_7F4A_7C15 &+ UInt64(index))
            let torrent = run.workspace + "/payload-\(index).torrent"
            let created = try ExternalCommand.run(
                ExternalCommand.currentExecutable(),
                ["create", "--quiet", "--v1", "--piece-size", "\(pieceKiB << 10)", "-o", torrent, payload],
                timeoutSeconds: 600)
            guard created.status == 0 else {
                printError("potluck: cannot create \(torrent)")
                throw ExitCode(1)
            }
            payloads.append(payload)
            torrentFiles.append(torrent)
        }
        let fixture = Fixture(seedDirectory: seedDirectory, payloads: payloads, torrents: torrentFiles)
        // The first seeder checks every payload and keeps more memory for it; this one, untimed, does
        // that once, so every measured seeder starts alike, from resume data.
        printError("checking the payloads once...")
        let (seeder, _) = try startSeeder(fixture, reactors: nil, run: run)
        seeder.stop()
        run.release(seeder)
        return fixture
    }

    /// `potluck seed` of every torrent and where it listens, once it says each one is seeding.
    private func startSeeder(
        _ fixture: Fixture, reactors: Int?, run: BenchRun
    ) throws -> (process: ChildProcess, peer: String) {
        let peer = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let seeder = try run.spawn(
            ExternalCommand.currentExecutable(),
            ["seed"] + fixture.torrents + [
                "--data", fixture.seedDirectory, "--listen", peer, "--verbose", "--quiet", "--no-dht",
                "--no-lsd",
            ]
                + (reactors.map { ["--reactors", "\($0)"] } ?? []), label: "potluck-seed")
        let log = SeedingLog(path: seeder.logPath)
        let ready = seeder.waitForLog(timeoutSeconds: Double(timeout)) { _ in
            log.update() >= torrents ? true : nil
        }
        guard ready == true, !seeder.reap() else {
            seeder.stop()
            run.release(seeder)
            throw ExternalCommand.Failure(description: "the seeder did not start: \(seeder.log.suffix(300))")
        }
        return (seeder, peer)
    }

    private func measure(_ count: Int, round: Int, fixture: Fixture, run: BenchRun) -> Measurement {
        var measurement = Measurement(run: round, reactors: count)
        let target = run.workspace + "/download"
        defer { ExternalCommand.removeTree(target) }
        do {
            printError("run \(round): a seeder with --reactors \(count), \(torrents) leechers...")
            let (seeder, peer) = try startSeeder(fixture, reactors: count, run: run)
            defer {
                seeder.stop()
                run.release(seeder)
            }
            // After the seeder's start, which may read the payloads.
            for payload in fixture.payloads { SwarmFixture.prepareCache(payload, cold: cache == .cold) }
            ExternalCommand.removeTree(target)
            mkdir(target, 0o700)
            let cpuBefore = ProcFS.cpuSeconds(seeder.pid) ?? 0
            let leechers = try run.python(
                "lt.py",
                ["download"] + fixture.torrents + [target, "--peer", peer, "--timeout", "\(timeout)"],
                label: "leechers-\(count)")
            defer { run.release(leechers) }
            let deadline = ContinuousClock.now + .seconds(timeout + 30)
            while !leechers.reap() {
                measurement.peakResidentKiB = max(
                    measurement.peakResidentKiB, ProcFS.peakResidentKiB(seeder.pid) ?? 0)
                measurement.threads = max(measurement.threads, ProcFS.threads(seeder.pid) ?? 0)
                if ContinuousClock.now > deadline { leechers.stop(graceSeconds: 5) }
                run.stopIfInterrupted()
                usleep(100_000)
            }
            let cpuAfter = ProcFS.cpuSeconds(seeder.pid)
            guard leechers.exitStatus == 0, let seconds = leechers.lastJSON?["seconds"] as? Double else {
                let last = leechers.log.split(separator: "\n").last.map(String.init) ?? ""
                throw ExternalCommand.Failure(description: "the leechers failed: \(last)")
            }
            guard let cpuAfter, !seeder.reap() else {
                throw ExternalCommand.Failure(description: "the seeder exited")
            }
            let intact = fixture.payloads.allSatisfy { payload in
                SwarmFixture.sameContents(payload, target + "/" + (payload as NSString).lastPathComponent)
            }
            guard intact else { throw ExternalCommand.Failure(description: "a leecher got wrong data") }
            measurement.status = "ok"
            measurement.bytes = Int64(torrents) * Int64(sizeMiB << 20)
            measurement.seconds = seconds
            measurement.cpuSeconds = cpuAfter - cpuBefore
        } catch {
            printError("run \(round), \(count) reactors: \(error)")
            measurement.status = "failed"
        }
        return measurement
    }

    // MARK: Report

    static func runTable(_ results: [Measurement]) -> Table {
        var table = Table("run", "reactors", "result", "upload MB/s", "CPU s/GiB", "threads", "peak RSS")
        for result in results {
            guard result.ok else {
                table.add("\(result.run)", "\(result.reactors)", result.status, "-", "-", "-", "-")
                continue
            }
            table.add(
                "\(result.run)", "\(result.reactors)", "ok", Format.fixed(result.megabytesPerSecond, 1),
                Format.fixed(result.cpuSecondsPerGiB, 2), "\(result.threads)",
                Format.size(Int64(result.peakResidentKiB) * 1024))
        }
        return table
    }

    /// Per reactor count, the medians of its runs that succeeded, beside the first count's.
    static func medianTable(_ results: [Measurement], order: [Int]) -> Table {
        var table = Table(
            "reactors", "ok", "upload MB/s", "CPU s/GiB", "peak RSS", "speed vs \(order[0])",
            "CPU vs \(order[0])")
        let base = results.filter { $0.reactors == order[0] && $0.ok }
        let baseSpeed = median(base.map(\.megabytesPerSecond))
        let baseCPU = median(base.map(\.cpuSecondsPerGiB))
        for count in order {
            let mine = results.filter { $0.reactors == count }
            let ok = mine.filter(\.ok)
            guard let speed = median(ok.map(\.megabytesPerSecond)),
                let cpu = median(ok.map(\.cpuSecondsPerGiB))
            else {
                table.add("\(count)", "0/\(mine.count)", "-", "-", "-", "-", "-")
                continue
            }
            let peak = Int64(median(ok.map { Double($0.peakResidentKiB) }) ?? 0) * 1024
            table.add(
                "\(count)", "\(ok.count)/\(mine.count)", Format.fixed(speed, 1), Format.fixed(cpu, 2),
                Format.size(peak), BenchReport.ratio(speed, baseSpeed), BenchReport.ratio(cpu, baseCPU))
        }
        return table
    }

    private func writeJSON(_ path: String, _ results: [Measurement]) {
        let object: [String: Any] = [
            "benchmark": "reactors", "date": ISO8601DateFormatter().string(from: Date()),
            "cores": HashPool.coreCount, "torrents": torrents, "payload_bytes": sizeMiB << 20,
            "piece_bytes": pieceKiB << 10, "cache": cache.rawValue, "runs": runs,
            "results": results.map { result -> [String: Any] in
                var row: [String: Any] = [
                    "run": result.run, "reactors": result.reactors, "result": result.status,
                ]
                guard result.ok else { return row }
                row["bytes"] = result.bytes
                row["seconds"] = result.seconds
                row["megabytes_per_second"] = result.megabytesPerSecond
                row["cpu_seconds"] = result.cpuSeconds
                row["cpu_seconds_per_gib"] = result.cpuSecondsPerGiB
                row["peak_rss_kib"] = result.peakResidentKiB
                row["threads"] = result.threads
                return row
            },
            "medians": reactors.map { count -> [String: Any] in
                let ok = results.filter { $0.reactors == count && $0.ok }
                return [
                    "reactors": count, "ok": ok.count,
                    "megabytes_per_second": median(ok.map(\.megabytesPerSecond)) ?? NSNull(),
                    "cpu_seconds_per_gib": median(ok.map(\.cpuSecondsPerGiB)) ?? NSNull(),
                ]
            },
        ]
        writeJSONReport(object, to: path)
    }
}
