import CommandSupport
import Foundation
import Glibc

/// A libtorrent leecher (`lt.py download --progress`) that keeps a daemon seeding at full speed while
/// `bench daemon` times torrent-get, and tells whether it is receiving data right now.
final class LoadLeecher {
    let process: ChildProcess
    private let progressPath: String
    private let started = ContinuousClock.now
    private var lastBytes = -1.0
    private var lastGrowth: ContinuousClock.Instant?

    /// Seconds a leecher may wait for its first piece; Transmission unchokes a new peer within 10 s.
    static let startTimeoutSeconds = 120.0

    init(_ torrent: String, peer: String, bind: String?, run: BenchRun, number: Int) throws {
        let out = run.workspace + "/load-\(number)"
        ExternalCommand.removeTree(out)
        progressPath = out + ".progress"
        process = try run.python(
            "lt.py",
            ["download", torrent, out, "--peer", peer, "--timeout", "300", "--progress", progressPath]
                + (bind.map { ["--bind", $0] } ?? []),
            label: "load-\(number)")
    }

    /// The latest "MONOTONIC_SECONDS VERIFIED_BYTES" line of its progress file.
    func progress() -> (seconds: Double, bytes: Double)? {
        guard let text = try? String(contentsOfFile: progressPath, encoding: .utf8),
            let line = text.split(separator: "\n").last
        else { return nil }
        let fields = line.split(separator: " ")
        guard fields.count == 2, let seconds = Double(fields[0]), let bytes = Double(fields[1]) else {
            return nil
        }
        if bytes != lastBytes {
            lastBytes = bytes
            lastGrowth = ContinuousClock.now
        }
        return (seconds, bytes)
    }

    /// Whether its verified bytes grew within the last 0.3 s (as of the latest `progress()`).
    var downloading: Bool {
        guard let lastGrowth, lastBytes > 0 else { return false }
        return ContinuousClock.now - lastGrowth < .milliseconds(300)
    }

    /// True once it has waited too long for its first piece.
    var stalled: Bool {
        lastBytes <= 0 && ContinuousClock.now - started > .seconds(Self.startTimeoutSeconds)
    }
}
