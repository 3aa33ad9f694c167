import Foundation
import Testing

@testable import PotluckBench

/// The Transmission web client (Debian's transmission-common) served by the daemon, in Debian's
/// headless Chromium: the page's script talks to the RPC (the 409 handshake included) and lists the
/// daemon's torrent. The screenshot is kept for a person to look at.
@Suite(.serialized) struct DaemonWebClientTests {
    static let chromium = "/usr/bin/chromium"
    static let webClient = "/usr/share/transmission/web/index.html"

    /// Where the screenshot is kept after the test.
    static let artefacts = FileManager.default.temporaryDirectory.appendingPathComponent(
        "potluck-test-artefacts")

    @Test func chromiumRendersTheTorrentList() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.chromium),
            "Debian's chromium is needed (scripts/lib.sh installs it)")
        try #require(
            FileManager.default.fileExists(atPath: Self.webClient),
            "Debian's transmission-common is needed (scripts/lib.sh installs it)")
        let (root, daemon) = try DaemonInteropTests.daemonSeedingOneTorrent()
        defer { try? FileManager.default.removeItem(at: root) }
        let page = "http://127.0.0.1:\(daemon.rpcPort)/transmission/web/"
        // Root may not use Chromium's sandbox; the profile is fresh so no other browser is disturbed.
        // Virtual time lets the page's timers (its first refresh) run before the DOM is taken.
        let common = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--user-data-dir=\(root.appendingPathComponent("chromium").path)", "--virtual-time-budget=15000",
            "--window-size=1280,800",
        ]
        // A page whose first refresh had not rendered the list when the budget ran out (seen on a
        // loaded machine, a browser start taking minutes) is loaded again, at most three times.
        var dom = try CreateInteropTests.run(Self.chromium, common + ["--dump-dom", page])
        for _ in 1..<3 where dom.status == 0 && !dom.output.contains(">payload<") {
            dom = try CreateInteropTests.run(Self.chromium, common + ["--dump-dom", page])
        }
        #expect(dom.status == 0, "\(daemon.logText)")
        #expect(dom.output.contains("torrent_list"), "\(dom.output.prefix(2000))")
        #expect(dom.output.contains(">payload<"), "\(dom.output)")
        // Its progress line: "300.0 kB, uploaded …" once complete, "… of 300.0 kB" before.
        #expect(dom.output.contains("300.0 kB"), "\(dom.output)")

        try FileManager.default.createDirectory(at: Self.artefacts, withIntermediateDirectories: true)
        let screenshot = Self.artefacts.appendingPathComponent("daemon-web-client.png")
        try? FileManager.default.removeItem(at: screenshot)
        let shot = try CreateInteropTests.run(
            Self.chromium, common + ["--screenshot=\(screenshot.path)", page])
        #expect(shot.status == 0)
        let size = (try? FileManager.default.attributesOfItem(atPath: screenshot.path)[.size] as? Int) ?? 0
        #expect(size > 0, "no screenshot at \(screenshot.path)")
        #expect(daemon.terminate().status == 0)
    }
}
