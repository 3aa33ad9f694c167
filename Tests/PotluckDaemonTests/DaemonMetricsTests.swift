import Foundation
import Testing

@testable import PotluckDaemon

/// `/metrics` in Prometheus' text format: every series present from the start, counters that add up,
/// RPC calls by method and result.
@Suite struct DaemonMetricsTests {
    static func lines(_ metrics: DaemonMetrics) -> Set<String> {
        Set(String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n").map(String.init))
    }

    @Test func everySeriesIsThereAtZeroWithItsHelpAndType() {
        let lines = Self.lines(
            DaemonMetrics(version: "9.9.9", startedAt: Date(timeIntervalSince1970: 1_700_000_000)))
        for state in ["stopped", "starting", "checking", "downloading", "seeding", "error"] {
            #expect(lines.contains(#"potluck_torrents{state="\#(state)"} 0.0"#), "\(lines)")
        }
        #expect(lines.contains("# TYPE potluck_torrents gauge"))
        #expect(lines.contains { $0.hasPrefix("# HELP potluck_torrents ") })
        #expect(lines.contains("# TYPE potluck_uploaded_bytes_total counter"))
        #expect(lines.contains("potluck_uploaded_bytes_total 0"))
        #expect(lines.contains("potluck_downloaded_bytes_total 0"))
        #expect(lines.contains(#"potluck_peers{state="connected"} 0.0"#))
        #expect(lines.contains(#"potluck_build_info{version="9.9.9"} 1.0"#))
        #expect(lines.contains("process_start_time_seconds 1700000000.0"), "\(lines)")
    }

    @Test func samplesSetGaugesAndAddToCounters() {
        let metrics = DaemonMetrics()
        var sample = DaemonMetrics.Sample()
        sample.states = [.seeding: 3, .stopped: 1]
        sample.uploadedBytes = 1000
        sample.downloadedBytes = 24
        sample.uploadRateBytesPerSecond = 512
        sample.connectedPeers = 4
        sample.uploadLimitBytesPerSecond = 100_000
        sample.connectionLimit = 200
        sample.ringOperationsInFlight = 17
        metrics.record(sample)
        sample.states = [.seeding: 2]
        sample.uploadedBytes = 500
        sample.downloadedBytes = 0
        metrics.record(sample)
        let lines = Self.lines(metrics)
        #expect(lines.contains(#"potluck_torrents{state="seeding"} 2.0"#), "\(lines)")
        #expect(lines.contains(#"potluck_torrents{state="stopped"} 0.0"#))
        #expect(lines.contains("potluck_uploaded_bytes_total 1500"))
        #expect(lines.contains("potluck_downloaded_bytes_total 24"))
        #expect(lines.contains("potluck_upload_rate_bytes 512.0"), "\(lines)")
        #expect(lines.contains(#"potluck_peers{state="connected"} 4.0"#))
        #expect(lines.contains(#"potluck_rate_limit_bytes{direction="upload"} 100000.0"#), "\(lines)")
        #expect(lines.contains(#"potluck_rate_limit_bytes{direction="download"} 0.0"#))
        #expect(lines.contains("potluck_connection_limit 200.0"))
        #expect(lines.contains("potluck_ring_operations_in_flight 17.0"))
    }

    @Test func rpcCallsAreCountedByMethodAndResult() {
        let metrics = DaemonMetrics()
        metrics.countCall(method: "torrent-get", succeeded: true)
        metrics.countCall(method: "torrent-get", succeeded: true)
        metrics.countCall(method: nil, succeeded: false)
        let lines = Self.lines(metrics)
        #expect(
            lines.contains(#"potluck_rpc_requests_total{method="torrent-get",result="success"} 2"#),
            "\(lines)")
        #expect(lines.contains(#"potluck_rpc_requests_total{method="invalid",result="error"} 1"#))
        #expect(lines.contains("# TYPE potluck_rpc_requests_total counter"))
    }
}
