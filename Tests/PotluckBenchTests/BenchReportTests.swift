import Foundation
import FoundationXML
import Testing

@testable import PotluckBench

/// The report's pieces, on made-up measurements.
@Suite struct BenchReportTests {
    static func measurement(
        _ client: ClientKind, role: TransferResult.Role = .leecher, ok: Bool = true
    ) -> TransferResult {
        var result = TransferResult(role: role, client: client, version: "1.0")
        result.status = ok ? "ok" : "timed out"
        result.bytes = 1 << 30
        result.wallSeconds = client == .libtorrent ? 4 : 2
        result.cpuSeconds = client == .libtorrent ? 2 : 1
        result.samples = (0...20).map { Sample(seconds: Double($0) * 0.1, bytes: Int64($0) << 20) }
        return result
    }

    @Test func ratiosAreToLibtorrentAndFailuresStayInTheTable() {
        let results = [
            Self.measurement(.potluck), Self.measurement(.libtorrent), Self.measurement(.aria2, ok: false),
        ]
        let table = BenchReport.leecherTable(results)
        #expect(table.rows.map { $0[0] } == ["potluck", "libtorrent", "aria2"])
        #expect(table.rows[0][7] == "2.00×" && table.rows[0][8] == "0.50×")
        #expect(table.rows[2][2] == "timed out" && table.rows[2][3] == "-")
    }

    @Test func mediansCountOnlyTheRunsThatSucceeded() {
        var slow = Self.measurement(.potluck)
        slow.wallSeconds = 8
        let results = [Self.measurement(.potluck), slow, Self.measurement(.potluck, ok: false)]
        let summary = BenchReport.medians(results)
        #expect(summary.count == 1 && summary[0].ok == 2 && summary[0].total == 3)
        // 1 GiB in 2 s and in 8 s: the median of two rates is their mean.
        #expect(
            abs(summary[0].megabytesPerSecond - (Double(1 << 30) / 2 / 1e6 + Double(1 << 30) / 8 / 1e6) / 2)
                < 1e-6)
        #expect(BenchReport.summaryTable(summary).rows[0][2] == "2/3")
    }

    @Test func throughputDifferencesSamplesOverHalfASecond() {
        // 1 MiB every 100 ms: 10.49 MB/s once the window is full.
        let points = BenchReport.throughput(Self.measurement(.potluck).samples)
        #expect(points.count == 21)
        #expect(points.first?.seconds == 0 && points.first?.megabytesPerSecond == 0)
        #expect(abs((points.last?.megabytesPerSecond ?? 0) - 10.48576) < 0.01)
    }

    @Test func axesEndOnRoundNumbers() {
        #expect(BenchReport.niceCeiling(0.7) == 1)
        #expect(BenchReport.niceCeiling(13) == 20)
        #expect(BenchReport.niceCeiling(380) == 500)
        #expect(BenchReport.niceCeiling(1000) == 1000)
    }

    @Test func plotHasAPanelPerRoleAndALinePerClient() {
        let svg = BenchReport.svg(
            title: "a <test>",
            panels: [
                ("leechers", [Self.measurement(.potluck), Self.measurement(.libtorrent)]),
                ("seeders", [Self.measurement(.potluck, role: .seeder)]),
            ])
        #expect(XMLParser(data: Data(svg.utf8)).parse())
        #expect(svg.components(separatedBy: "<polyline class=\"series\"").count - 1 == 3)
        #expect(svg.contains("a &lt;test&gt;"))
    }
}
