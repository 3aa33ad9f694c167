import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// `bench many` and `bench reactors` run small, through the built `potluck` binary: every leecher gets
/// its torrent and the tables hold sane numbers. Speed is never asserted here; it is measured by
/// running the benchmarks themselves.
@Suite(.serialized) struct BenchManySmokeTests {
    /// The built `potluck` binary, which SwiftPM puts beside the test bundle.
    static let potluck =
        URL(fileURLWithPath: ExternalCommand.currentExecutable()).deletingLastPathComponent()
        .appendingPathComponent("potluck").path

    static var transmissionAvailable: Bool {
        getuid() == 0 && access("/usr/bin/transmission-daemon", X_OK) == 0
            && access("/usr/bin/transmission-remote", X_OK) == 0
    }

    /// The rows of the first table after the line holding `marker` whose header starts with
    /// `firstHeader`, cells trimmed.
    static func rows(_ output: String, table firstHeader: String, after marker: String = "") -> [[String]] {
        var rows: [[String]] = []
        var inside = false
        let text =
            marker.isEmpty
            ? Substring(output) : output[(output.range(of: marker)?.upperBound ?? output.endIndex)...]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("|") else {
                if inside { break }
                continue
            }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.first == firstHeader {
                inside = true
            } else if inside && !(cells.first?.hasPrefix("-") ?? true) {
                rows.append(cells)
            }
        }
        return rows
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try ExternalCommand.run(
            potluck, arguments, timeoutSeconds: 600, mergeStandardError: true)
        return (result.status, result.standardOutput)
    }

    func checkMany(clients: [String]) throws {
        let json = NSTemporaryDirectory() + "/potluck-bench-many-\(UUID()).json"
        defer { try? FileManager.default.removeItem(atPath: json) }
        let (status, output) = try Self.run(
            [
                "bench", "many", "--torrents", "50", "--restarts", "1", "--idle-seconds", "1",
                "--directory", NSTemporaryDirectory(), "--json", json, "--client",
            ] + clients)
        #expect(status == 0, "\(output)")
        let rows = Self.rows(output, table: "client")
        #expect(rows.map { $0[0] } == clients, "\(output)")
        for row in rows {
            // client, version, result, torrents, first start s, restart to serve s, restart to all
            // seeding s, threads, RssAnon MiB, idle CPU s/10 s
            #expect(row[2] == "ok", "\(row[0]): \(output)")
            #expect(row[3] == "50")
            #expect((Double(row[4]) ?? -1) > 0, "first start: \(row)")
            #expect((Double(row[5]) ?? -1) > 0, "restart to serve: \(row)")
            #expect((Int(row[7]) ?? 0) > 0, "threads: \(row)")
            #expect((Double(row[8]) ?? 0) > 0, "RssAnon: \(row)")
            #expect((Double(row[9]) ?? -1) >= 0, "idle CPU: \(row)")
        }
        // client, leecher, peak descriptors, descriptors, threads, RssAnon MiB, idle CPU s/10 s
        let firstStart = Self.rows(output, table: "client", after: "After the first start")
        #expect(firstStart.map { $0[0] } == clients, "\(output)")
        for row in firstStart {
            #expect(row[1] == "ok", "the leecher after the first start: \(row)")
            #expect((Int(row[3]) ?? 0) > 0, "descriptors: \(row)")
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
        let results = try #require((object as? [String: Any])?["results"] as? [[String: Any]])
        #expect(results.count == clients.count)
        for result in results {
            #expect(result["leecher_after_first_start"] as? Bool == true, "\(result)")
            let restarts = result["restarts"] as? [[String: Any]] ?? []
            #expect(restarts.count == 1)
            #expect(restarts.allSatisfy { $0["serve_seconds"] is Double }, "\(restarts)")
        }
    }

    @Test func benchManyServesEveryLeecherFromPotluck() throws {
        try checkMany(clients: ["potluck"])
    }

    @Test(.enabled(if: transmissionAvailable, "needs root and transmission-daemon"))
    func benchManyServesEveryLeecherFromTransmission() throws {
        try checkMany(clients: ["transmission"])
    }

    @Test func benchReactorsVerifiesEveryLeecher() throws {
        let (status, output) = try Self.run([
            "bench", "reactors", "--torrents", "2", "--size-mib", "4", "--piece-kib", "256", "--runs", "1",
            "--directory", NSTemporaryDirectory(),
        ])
        #expect(status == 0, "\(output)")
        let rows = Self.rows(output, table: "run")
        #expect(rows.map { $0[1] } == ["1", "2"], "\(output)")
        for row in rows {
            // run, reactors, result, upload MB/s, CPU s/GiB, threads, peak RSS
            #expect(row[2] == "ok", "\(output)")
            #expect((Double(row[3]) ?? 0) > 0)
            #expect((Int(row[5]) ?? 0) > 0)
        }
    }
}
