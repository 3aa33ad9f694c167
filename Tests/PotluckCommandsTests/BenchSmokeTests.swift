import Foundation
import Testing

/// The benchmarks run small: every client's download is verified and the table has its shape. Speed
/// is never asserted here; it is measured by running the benchmarks themselves.
@Suite(.serialized) struct BenchSmokeTests {
    static func tableRows(_ output: String) -> [[String]] {
        output.split(separator: "\n").filter { $0.hasPrefix("| ") }.map { line in
            line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    @Test func benchCreateMeasuresEveryTool() throws {
        let result = try runPotluck([
            "bench", "create", "--size-mib", "8", "--rounds", "1", "--directory", NSTemporaryDirectory(),
        ])
        #expect(result.status == 0, "\(result.error)")
        // One table with the payload cached as written, one after reading it back.
        let tables = result.output.components(separatedBy: "Torrent creation").dropFirst()
        #expect(tables.map { $0.contains("(as written)") } == [true, false])
        #expect(tables.map { $0.contains("(read back)") } == [false, true])
        for table in tables {
            let rows = Self.tableRows(table)
            #expect(rows.first?.first == "tool")
            let tools = rows.dropFirst().map { $0[0] }
            #expect(tools == ["potluck", "mktorrent", "libtorrent", "transmission-create"])
            #expect(rows.dropFirst().allSatisfy { $0[2] != "failed" }, "\(result.output)")
        }
    }

    @Test func benchDownloadVerifiesEveryClient() throws {
        let json = NSTemporaryDirectory() + "/potluck-bench-\(UUID()).json"
        defer { try? FileManager.default.removeItem(atPath: json) }
        let result = try runPotluck([
            "bench", "download", "--size-mib", "8", "--piece-kib", "256", "--seeders", "2", "--timeout",
            "120",
            "--json", json,
        ])
        #expect(result.status == 0, "\(result.error)")
        let rows = Self.tableRows(result.output)
        #expect(rows.first?.first == "client")
        #expect(rows.dropFirst().map { $0[0] } == ["potluck", "libtorrent", "transmission", "aria2"])
        for row in rows.dropFirst() {
            #expect(row[2] == "ok", "\(row[0]) did not download the payload intact: \(row)\n\(result.error)")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: json))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect((object?["results"] as? [[String: Any]])?.count == 4)
    }

    @Test func benchMagnetFindsTheSeederThroughTheDHTWithEveryClient() throws {
        let result = try runPotluck([
            "bench", "magnet", "--nodes", "8", "--size-mib", "4", "--runs", "1", "--directory",
            NSTemporaryDirectory(),
        ])
        #expect(result.status == 0, "\(result.error)")
        let rows = Self.tableRows(result.output).filter { $0.first == "1" }
        #expect(rows.map { $0[1] } == ["potluck", "libtorrent", "aria2"], "\(result.output)")
        for row in rows {
            #expect(row[2] == "ok", "\(row[1]) did not download the payload intact: \(row)\n\(result.error)")
        }
    }
}
