import Foundation
import Testing

@testable import PotluckBench

/// `bench soak`: the slope it judges growth by, its verdict, and a one-minute run through the built
/// `potluck` binary against real libtorrent peers, opentracker and hostile peers.
@Suite struct BenchSoakTests {
    @Test func slopeIsPerMinuteByLeastSquares() {
        #expect(SoakSeries.slopePerMinute([(0, 10), (30, 11), (60, 12)]) == 2)
        #expect(SoakSeries.slopePerMinute([(0, 5), (60, 5), (120, 5)]) == 0)
        // A sawtooth (what churn looks like) has no trend.
        let saw: [(Double, Double)] = (0..<120).map { step in
            let value: Double = step % 2 == 0 ? 10 : 20
            return (Double(step) * 5, value)
        }
        #expect(abs(SoakSeries.slopePerMinute(saw)) < 0.05)
        #expect(SoakSeries.slopePerMinute([(0, 1)]) == 0)
    }

    func report(seconds: Double, rssPerMinute: Double) -> SoakReport {
        let samples = stride(from: 0.0, through: seconds, by: 5).map { time in
            SoakSample(
                seconds: time,
                values: [
                    .rssAnonMiB: 30 + rssPerMinute * time / 60, .descriptors: 25, .threads: 13,
                    .ringOperations: 4,
                ])
        }
        return SoakReport(
            seconds: seconds, torrents: 3, identicalCopies: 10, differingCopies: [], leechersJoined: 60,
            hostile: ["corrupt": 1], fills: 1, startedAgain: 1, samples: samples, daemonExit: nil,
            stopSeconds: 0.1)
    }

    @Test func growthFailsOnlyALongEnoughRun() {
        #expect(report(seconds: 1800, rssPerMinute: 0).ok)
        let leaking = report(seconds: 1800, rssPerMinute: 2)
        #expect(!leaking.ok)
        #expect(
            leaking.problems.contains { $0.hasPrefix("RssAnon MiB grows 2.00 a minute") },
            "\(leaking.problems)")
        // A short run's slope is reported, not judged: a warm-up is not a leak.
        #expect(report(seconds: 60, rssPerMinute: 2).ok)
    }

    @Test func aDifferingCopyOrAnExitFails() {
        let good = report(seconds: 60, rssPerMinute: 0)
        let differing = SoakReport(
            seconds: 60, torrents: 3, identicalCopies: 1, differingCopies: ["t00001.bin"], leechersJoined: 1,
            hostile: [:], fills: 0, startedAgain: 0, samples: good.samples, daemonExit: nil, stopSeconds: 0.1)
        #expect(!differing.ok)
        let exited = SoakReport(
            seconds: 60, torrents: 3, identicalCopies: 1, differingCopies: [], leechersJoined: 1,
            hostile: [:],
            fills: 0, startedAgain: 0, samples: good.samples, daemonExit: "status 134", stopSeconds: nil)
        #expect(exited.problems.contains { $0.hasPrefix("the daemon exited") })
    }

    @Test(.enabled(if: getuid() == 0, "needs root (a tmpfs)"))
    func aMinuteOfSoakVerifiesCopiesAndSurvivesEveryFault()
        throws
    {
        let json = NSTemporaryDirectory() + "/potluck-bench-soak-\(UUID()).json"
        defer { try? FileManager.default.removeItem(atPath: json) }
        let (status, output) = try BenchManySmokeTests.run(
            [
                "bench", "soak", "--minutes", "1.2", "--size-mib", "4", "--directory", NSTemporaryDirectory(),
                "--json", json,
            ])
        #expect(status == 0, "\(output)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
        let result = try #require(object as? [String: Any])
        #expect(result["ok"] as? Bool == true, "\(output)")
        #expect((result["identical_copies"] as? Int ?? 0) > 0, "\(output)")
        #expect(result["differing_copies"] as? [String] == [], "\(output)")
        // Every hostile peer had its turn within the minute, and the disk filled once (at 30 s).
        let hostile = result["hostile"] as? [String: Int] ?? [:]
        #expect(Set(hostile.keys) == Set(SoakRun.hostileModes), "\(hostile)")
        #expect(result["fills"] as? Int == 1, "\(output)")
        #expect(result["stop_seconds"] is Double, "\(output)")
        let samples = result["samples"] as? [[String: Any]] ?? []
        #expect(samples.count >= 10)
        #expect(samples.contains { $0["ring operations in flight"] is Double }, "\(samples.last ?? [:])")
    }
}
