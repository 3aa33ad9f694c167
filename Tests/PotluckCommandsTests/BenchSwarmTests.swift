import Foundation
import FoundationXML
import Glibc
import Testing

@testable import PotluckBench

/// `bench compare`, `bench swarm` and `--link` run small: every client's copy is verified, the table,
/// JSON and SVG have their shape, and nothing the run made is left behind. Speed is never asserted.
@Suite(.serialized, .enabled(if: getuid() == 0, "the swarm benchmarks need root"))
struct BenchSwarmTests {
    /// A scratch folder for one benchmark run's workspace.
    static func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "potluck-bench-test-\(UUID())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func installed(_ kind: String) -> Bool { ClientKind(rawValue: kind)?.isInstalled ?? false }

    /// The run identifier the benchmark printed ("run benchNNN: ...").
    static func runID(_ error: String) -> String? {
        error.split(separator: "\n").first { $0.hasPrefix("run bench") }.flatMap {
            $0.split(separator: " ").dropFirst().first.map { String($0.dropLast()) }
        }
    }

    /// What a run identifier still owns: namespaces created for it and processes carrying it.
    static func leftovers(of run: String) -> [String] {
        var found: [String] = []
        let owners = (try? FileManager.default.contentsOfDirectory(atPath: "/run/potluck-interop")) ?? []
        for name in owners {
            let owner = try? String(contentsOfFile: "/run/potluck-interop/" + name, encoding: .utf8)
            if owner?.trimmingCharacters(in: .whitespacesAndNewlines) == run,
                FileManager.default.fileExists(atPath: "/run/netns/" + name)
            {
                found.append("namespace " + name)
            }
        }
        let tag = Data("POTLUCK_INTEROP_RUN=\(run)\u{0}".utf8)
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard Int32(entry) != nil,
                let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ"),
                environment.range(of: tag) != nil
            else { continue }
            let state = (try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8))?.split(
                separator: ")"
            )
            .last?.split(separator: " ").first
            if state != "Z" { found.append("process \(entry)") }
        }
        return found
    }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Every `ok` row has the measured fields; every row has a client, version and result.
    static func checkRows(_ rows: [[String: Any]]) {
        for row in rows {
            #expect(row["client"] is String && row["version"] is String && row["result"] is String, "\(row)")
            guard row["result"] as? String == "ok" else { continue }
            for key in ["megabytes_per_second", "cpu_seconds_per_gib", "peak_rss_kib", "seconds", "samples"] {
                #expect(row[key] != nil, "\(key) missing in \(row)")
            }
            #expect((row["samples"] as? [[Double]])?.isEmpty == false, "no progress samples in \(row)")
        }
    }

    @Test func compareVerifiesEveryClientBothWaysWithTableJSONAndPlot() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let json = directory + "/result.json"
        let plot = directory + "/plot.svg"
        let result = try runPotluck([
            "bench", "compare", "--size-mib", "4", "--piece-kib", "64", "--seeders", "2", "--leechers", "2",
            "--seeder-clients", "potluck", "libtorrent", "transmission", "aria2", "--timeout", "90",
            "--directory", directory, "--json", json, "--plot", plot,
        ])
        #expect(result.status == 0, "\(result.error)")
        let rows = BenchSmokeTests.tableRows(result.output)
        let leechers = rows.filter { ["potluck", "libtorrent", "transmission", "aria2"].contains($0[0]) }
        // Each client appears once per table: as a leecher, then as a seeder.
        #expect(
            leechers.map { $0[0] } == [
                "potluck", "libtorrent", "transmission", "aria2", "potluck", "libtorrent", "transmission",
                "aria2",
            ])
        for row in leechers {
            let expected = Self.installed(row[0]) ? "ok" : "not installed"
            #expect(row[2].hasPrefix(expected), "\(row)\n\(result.error)")
        }
        #expect(rows.contains { $0.first == "client" && $0.contains("first piece s") })
        #expect(rows.contains { $0.first == "seeder" && $0.contains("upload MB/s") })

        let object = try Self.json(json)
        let leecherRows = try #require(object["leechers"] as? [[String: Any]])
        let seederRows = try #require(object["seeders"] as? [[String: Any]])
        #expect(leecherRows.count == 4 && seederRows.count == 4)
        Self.checkRows(leecherRows + seederRows)
        #expect(seederRows.allSatisfy { $0["leechers"] as? Int == 2 })
        #expect(
            leecherRows.first { $0["client"] as? String == "libtorrent" }?["speed_vs_libtorrent"] as? Double
                == 1)

        // The plot is well-formed XML with a line for every client that has samples.
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "the SVG is not well-formed XML")
        let lines = svg.components(separatedBy: "<polyline class=\"series\"").count - 1
        let okRows = (leecherRows + seederRows).filter { $0["result"] as? String == "ok" }.count
        #expect(lines == okRows)
        // Only the JSON and the plot remain: the workspace is gone.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == [
                "plot.svg", "result.json",
            ])
        if let run = Self.runID(result.error) { #expect(Self.leftovers(of: run).isEmpty) }
    }

    @Test func swarmWithATrackerVerifiesEveryLeecherInEveryRun() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let json = directory + "/swarm.json"
        let result = try runPotluck([
            "bench", "swarm", "--size-mib", "4", "--piece-kib", "64", "--seeders", "2", "--seeder-client",
            "libtorrent", "--leechers", "3", "--leecher-client", "potluck", "libtorrent", "aria2",
            "--tracker",
            "--runs", "2", "--warm", "--timeout", "60", "--directory", directory, "--json", json,
        ])
        #expect(result.status == 0, "\(result.error)")
        let rows = BenchSmokeTests.tableRows(result.output)
        let leechers = rows.filter {
            $0[0].hasPrefix("potluck-") || $0[0].hasPrefix("libtorrent-") || $0[0].hasPrefix("aria2-")
        }
        // Three leechers, twice (the seeder table's rows have five columns).
        #expect(
            leechers.filter { $0.count == 9 }.map { $0[0] } == [
                "potluck-1", "libtorrent-2", "aria2-3", "potluck-1", "libtorrent-2", "aria2-3",
            ])
        for row in leechers where row.count == 9 {
            let kind = String(row[0].split(separator: "-")[0])
            #expect(row[2] == (Self.installed(kind) ? "ok" : row[2]), "\(row)\n\(result.error)")
        }
        let object = try Self.json(json)
        let runs = try #require(object["runs"] as? [[String: Any]])
        #expect(runs.count == 2)
        for run in runs {
            Self.checkRows(run["leechers"] as? [[String: Any]] ?? [])
            #expect((run["seeders"] as? [[String: Any]])?.count == 2)
        }
        #expect(object["tracker"] as? Bool == true)
        // With several runs, a summary per client: how many of its leechers succeeded, over all runs.
        let summary = try #require(object["summary"] as? [[String: Any]])
        #expect(summary.map { $0["client"] as? String } == ["potluck", "libtorrent", "aria2"])
        #expect(summary.allSatisfy { $0["total"] as? Int == 2 })
        #expect(rows.contains { $0.first == "client" && $0[2] == "ok" }, "no summary table")
    }

    @Test func linkShapesPeersInNamespacesAndRemovesThem() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let json = directory + "/link.json"
        let result = try runPotluck([
            "bench", "compare", "--size-mib", "4", "--piece-kib", "64", "--seeders", "2", "--leechers", "2",
            "--clients", "potluck", "libtorrent", "aria2", "--seeder-clients", "potluck", "libtorrent",
            "--link", "500m,10", "--timeout", "60", "--directory", directory, "--json", json,
        ])
        #expect(result.status == 0, "\(result.error)")
        let rows = BenchSmokeTests.tableRows(result.output)
        #expect(
            rows.filter { $0.first == "client" || $0.first == "seeder" }.allSatisfy { $0.last == "link use" })
        // aria2 finds the seeders on a tracker the benchmark runs on a link of its own.
        let measured = rows.filter { ["potluck", "libtorrent", "aria2"].contains($0[0]) }
        #expect(measured.map { $0[0] } == ["potluck", "libtorrent", "aria2", "potluck", "libtorrent"])
        for row in measured where Self.installed(row[0]) {
            #expect(row[2] == "ok", "\(row)\n\(result.error)")
            #expect(row.last?.hasSuffix("%") == true, "no link utilisation in \(row)")
        }
        // Without sch_netem the delay is not applied, and the output says so.
        let link = try #require(try Self.json(json)["link"] as? [String: Any])
        if link["delay_applied"] as? Bool == false {
            #expect(result.error.contains("netem"), "\(result.error)")
            #expect(result.output.contains("no delay"))
        }
        let run = try #require(Self.runID(result.error))
        #expect(Self.leftovers(of: run).isEmpty)
    }

    @Test(.enabled(if: ClientKind.transmission.isInstalled, "Transmission is not installed"))
    func transmissionSeedsAndLeechesOnShapedLinksThroughATracker() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try runPotluck([
            "bench", "swarm", "--size-mib", "2", "--piece-kib", "64", "--seeders", "1", "--seeder-client",
            "transmission", "--leechers", "2", "--leecher-client", "transmission", "potluck", "--tracker",
            "--link", "1g", "--timeout", "60", "--directory", directory,
        ])
        #expect(result.status == 0, "\(result.error)")
        let rows = BenchSmokeTests.tableRows(result.output).filter { $0.count == 10 }
        #expect(rows.map { $0[0] } == ["client", "transmission-1", "potluck-2"])
        for row in rows.dropFirst() { #expect(row[2] == "ok", "\(row)\n\(result.error)") }
        let run = try #require(Self.runID(result.error))
        #expect(Self.leftovers(of: run).isEmpty)
    }

    /// Starts a benchmark that runs long enough to be interrupted; returns it and its stderr file.
    static func startLongRun(_ directory: String) throws -> (Process, String) {
        let process = Process()
        process.executableURL = potluckExecutable()
        process.arguments = [
            "bench", "compare", "--seed-only", "--seeder-clients", "potluck", "--leechers", "2", "--size-mib",
            "64", "--directory", directory,
        ]
        let errorPath = directory + "/stderr.txt"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait until the seeder runs (its log exists), so there is something to clean up.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
            if text.contains("seeding to") { break }
            usleep(100_000)
        }
        return (process, errorPath)
    }

    @Test func ctrlCStopsEveryChildAndRemovesTheWorkspace() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (process, errorPath) = try Self.startLongRun(directory)
        let run = try #require(Self.runID((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""))
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        #expect(Self.leftovers(of: run).isEmpty, "\(Self.leftovers(of: run))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["stderr.txt"])
    }

    @Test func aKilledRunIsCleanedUpByTheNext() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (process, errorPath) = try Self.startLongRun(directory)
        let run = try #require(Self.runID((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let workspace = "potluck-bench-\(run.dropFirst("bench".count))"
        #expect(FileManager.default.fileExists(atPath: directory + "/" + workspace))
        // The next run in the same folder removes what the killed one left.
        let next = try runPotluck([
            "bench", "swarm", "--size-mib", "1", "--piece-kib", "64", "--seeders", "1", "--leechers", "1",
            "--leecher-client", "potluck", "--directory", directory,
        ])
        #expect(next.status == 0, "\(next.error)")
        #expect(next.error.contains("interrupted benchmark"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/" + workspace))
        #expect(Self.leftovers(of: run).isEmpty, "\(Self.leftovers(of: run))")
    }

    /// An installed potluck: the built binary copied to a folder of its own, with the build's copy of the
    /// harness beside it, run from another working directory. It finds that copy (the path it prints
    /// for cleaning up is there); without it, it says so, and --harness still gives one.
    @Test func aCopiedBinaryFindsTheHarnessBesideIt() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bin = URL(fileURLWithPath: directory).appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let executable = bin.appendingPathComponent("potluck")
        try FileManager.default.copyItem(at: potluckExecutable(), to: executable)
        let bundleName = "Potluck_PotluckBench.resources"
        let bundle = bin.appendingPathComponent(bundleName)
        let built = potluckExecutable().deletingLastPathComponent().appendingPathComponent(bundleName)
        try FileManager.default.copyItem(at: built, to: bundle)
        let swarm = [
            "bench", "swarm", "--size-mib", "1", "--piece-kib", "64", "--seeders", "1", "--leechers", "1",
            "--leecher-client", "potluck", "--directory", directory,
        ]
        let elsewhere = FileManager.default.temporaryDirectory

        let installed = try runPotluck(swarm, executable: executable, workingDirectory: elsewhere)
        #expect(installed.status == 0, "\(installed.error)")
        #expect(installed.error.contains("`\(bundle.path)/netns.py cleanup --run"), "\(installed.error)")

        try FileManager.default.removeItem(at: bundle)
        let missing = try runPotluck(swarm, executable: executable, workingDirectory: elsewhere)
        #expect(missing.status == 1)
        #expect(missing.error.contains("cannot find the interop harness"), "\(missing.error)")

        let harness = ["--harness", Interop.directory.path]
        let given = try runPotluck(swarm + harness, executable: executable, workingDirectory: elsewhere)
        #expect(given.status == 0, "\(given.error)")
        #expect(given.error.contains("`\(Interop.directory.path)/netns.py cleanup --run"), "\(given.error)")
    }

    @Test func badOptionsAreRefusedWithAReason() throws {
        let link = try runPotluck(["bench", "compare", "--link", "fast"])
        #expect(link.status != 0 && link.error.contains("--link fast"))
        let client = try runPotluck(["bench", "swarm", "--leecher-client", "utorrent"])
        #expect(client.status != 0 && client.error.contains("unknown client utorrent"))
        let two = try runPotluck(["bench", "swarm", "--leechers", "2", "--leecher-client", "transmission"])
        #expect(two.status != 0 && two.error.contains("at most one Transmission leecher"))
    }
}
