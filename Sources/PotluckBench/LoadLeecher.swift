import CommandSupport
import Foundation
import Glibc

/// A libtorrent leecher (`lt.py download --progress`) that keeps a daemon seeding at full speed while
/// `bench daemon` times torrent-get, and tells whether it is receiving data at its steady rate now.
final class LoadLeecher {
    let process: ChildProcess
    private let progressPath: String
    /// Verified bytes past which it is taken to be at full speed: a seeder's rate climbs over the first
    /// seconds (Transmission's over about 5 s), so the first quarter of the torrent is left out.
    private let warmBytes: Double
    private let started = ContinuousClock.now
    private var lastBytes = -1.0
    private var lastGrowth: ContinuousClock.Instant?

    /// Seconds a leecher may wait for its first piece; Transmission unchokes a new peer within 10 s.
    static let startTimeoutSeconds = 120.0

    init(_ torrent: String, bytes: Int, peer: String, bind: String?, run: BenchRun, number: Int) throws {
        warmBytes = Double(bytes) / 4
        let out = run.workspace + "/load-\(number)"
        ExternalCommand.removeTree(out)
        progressPath = out + ".progress"
        process = try run.python(
            "lt.py",
            ["download", torrent, out, "--peer", peer, "--timeout", "300", "--progress", progressPath]
                + (bind.map { ["--bind", $0] } ?? []),
            label: "load-\(number)")
    }

    /// Its progress file's "MONOTONIC_SECONDS VERIFIED_BYTES" lines.
    private func readings() -> [(seconds: Double, bytes: Double)] {
        let text = (try? String(contentsOfFile: progressPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 2, let seconds = Double(fields[0]), let bytes = Double(fields[1]) else {
                return nil
            }
            return (seconds, bytes)
        }
    }

    /// The latest reading; notes when the verified bytes last grew.
    func progress() -> (seconds: Double, bytes: Double)? {
        guard let last = readings().last else { return nil }
        if last.bytes != lastBytes {
            lastBytes = last.bytes
            lastGrowth = ContinuousClock.now
        }
        return last
    }

    /// Bytes verified since it was at full speed, and the seconds that took; nil until two readings
    /// apart in time show that.
    func transfer() -> (bytes: Double, seconds: Double)? {
        let lines = readings()
        guard let first = lines.first(where: { $0.bytes >= warmBytes }), let last = lines.last,
            last.seconds > first.seconds
        else { return nil }
        return (last.bytes - first.bytes, last.seconds - first.seconds)
    }

    /// Whether it is past its first quarter and its verified bytes grew within the last 0.3 s (as of
    /// the latest `progress()`).
    var downloading: Bool {
        guard let lastGrowth, lastBytes >= warmBytes else { return false }
        return ContinuousClock.now - lastGrowth < .milliseconds(300)
    }

    /// True once it has waited too long for its first piece.
    var stalled: Bool {
        lastBytes <= 0 && ContinuousClock.now - started > .seconds(Self.startTimeoutSeconds)
    }
}
