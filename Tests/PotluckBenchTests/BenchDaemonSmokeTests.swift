import Foundation
import Testing

@testable import PotluckBench

/// `bench daemon` run small through the built `potluck` binary: each daemon takes every torrent over
/// RPC, serves every leecher, and the table holds a number for each measure. Speed is never asserted
/// here; it is measured by running the benchmark itself.
@Suite(.serialized) struct BenchDaemonSmokeTests {
    func check(clients: [String]) throws {
        let json = NSTemporaryDirectory() + "/potluck-bench-daemon-\(UUID()).json"
        defer { try? FileManager.default.removeItem(atPath: json) }
        let (status, output) = try BenchManySmokeTests.run(
            [
                "bench", "daemon", "--torrents", "20", "--restarts", "1", "--idle-seconds", "1", "--samples",
                "5", "--load-mib", "64", "--directory", NSTemporaryDirectory(), "--json", json, "--client",
            ] + clients)
        #expect(status == 0, "\(output)")
        // client, version, result, torrents, leecher after first start
        let daemons = BenchManySmokeTests.rows(output, table: "client")
        #expect(daemons.map { $0[0] } == clients, "\(output)")
        for row in daemons {
            #expect(row[2] == "ok", "\(row[0]): \(output)")
            #expect(row[3] == "20")
            #expect(row[4] == "ok", "the leecher after the first start: \(row)")
        }
        // measure, one column per client, (ratio,) target
        let measures = BenchManySmokeTests.rows(output, table: "measure")
        #expect(measures.count == 16, "\(output)")
        for row in measures {
            for (column, client) in clients.enumerated() {
                #expect(Double(row[column + 1]) != nil, "\(client), \(row[0]): \(output)")
            }
        }
        let threads = try #require(measures.first { $0[0] == "threads" })
        #expect(threads.dropFirst().prefix(clients.count).allSatisfy { (Int($0) ?? 0) > 0 })
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
        let results = try #require((object as? [String: Any])?["results"] as? [[String: Any]])
        #expect(results.count == clients.count)
        for result in results {
            let restarts = result["restarts"] as? [[String: Any]] ?? []
            #expect(restarts.count == 1)
            #expect(restarts.allSatisfy { $0["serving_seconds"] is Double }, "\(restarts)")
            let seeding = result["torrent_get_seeding"] as? [String: Any]
            #expect(seeding?["samples"] as? Int == 5, "\(result)")
        }
    }

    @Test func benchDaemonMeasuresPotluckDaemon() throws {
        try check(clients: ["potluck"])
    }

    @Test(.enabled(if: BenchManySmokeTests.transmissionAvailable, "needs root and transmission-daemon"))
    func benchDaemonMeasuresTransmissionDaemon() throws {
        try check(clients: ["transmission"])
    }
}
