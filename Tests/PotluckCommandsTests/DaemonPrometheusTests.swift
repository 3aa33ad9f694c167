import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// `/metrics` read by Debian's real Prometheus tools: `promtool check metrics` accepts the text, and a
/// Prometheus server scraping the daemon every second has a `potluck_torrents` series in its API.
@Suite(.serialized) struct DaemonPrometheusTests {
    static let prometheus = "/usr/bin/prometheus"
    static let promtool = "/usr/bin/promtool"

    /// Runs `executable` with `input` on its standard input; its standard output and error together.
    static func run(
        _ executable: String, _ arguments: [String], input: Data
    ) throws -> (
        status: Int32, output: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    @Test func promtoolAcceptsTheTextAndPrometheusScrapesIt() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.prometheus),
            "Debian's prometheus is needed (scripts/lib.sh installs it)")
        let (root, daemon) = try DaemonInteropTests.daemonSeedingOneTorrent()
        defer { try? FileManager.default.removeItem(at: root) }
        let target = "127.0.0.1:\(daemon.rpcPort)"

        let text = try CreateInteropTests.run("/usr/bin/curl", ["-s", "http://\(target)/metrics"]).output
        #expect(
            text.contains(#"potluck_rpc_requests_total{method="torrent-add",result="success"} 1"#), "\(text)")
        let check = try Self.run(Self.promtool, ["check", "metrics"], input: Data(text.utf8))
        #expect(check.status == 0, "\(check.output)\n\(text)")

        let config = root.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: potluck
            static_configs:
              - targets: ["\(target)"]
        """.write(to: config, atomically: true, encoding: .utf8)
        let apiPort = SeedInteropTests.freePort(on: "127.0.0.1")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.prometheus)
        server.arguments = [
            "--config.file=\(config.path)", "--storage.tsdb.path=\(root.appendingPathComponent("tsdb").path)",
            "--web.listen-address=127.0.0.1:\(apiPort)",
        ]
        let serverLog = root.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: serverLog.path, contents: nil)
        server.standardOutput = FileHandle.nullDevice
        server.standardError = try FileHandle(forWritingTo: serverLog)
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        // Until a scrape has landed (a few seconds at one scrape a second), at most 60 s.
        let query = "http://127.0.0.1:\(apiPort)/api/v1/query?query=potluck_torrents"
        var answer = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !answer.contains(#""__name__":"potluck_torrents""#) {
            usleep(500_000)
            answer = (try? CreateInteropTests.run("/usr/bin/curl", ["-s", query]).output) ?? ""
        }
        let log = (try? String(contentsOf: serverLog, encoding: .utf8)) ?? ""
        #expect(answer.contains(#""__name__":"potluck_torrents""#), "\(answer)\n\(log)")
        #expect(answer.contains(#""job":"potluck""#), "\(answer)")
        // The one torrent is counted in one state or another.
        let sum = try CreateInteropTests.run(
            "/usr/bin/curl", ["-s", "http://127.0.0.1:\(apiPort)/api/v1/query?query=sum(potluck_torrents)"]
        ).output
        #expect(sum.contains(#","1"]"#), "\(sum)")
    }
}
