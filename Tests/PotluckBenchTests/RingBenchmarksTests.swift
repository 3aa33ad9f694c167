import Foundation
import Testing

@testable import PotluckBench
@testable import URing

@Suite struct RingBenchmarksTests {
    @Test func ringBenchmarksMoveEveryByte() throws {
        // Small sizes: this checks that the measured loops finish and count right, not how fast they are.
        for options in [RingOptions(), RingOptions(disabledFeatures: .all)] {
            let tcp = try RingBenchmarks.tcpThroughRing(Ring(options: options), totalBytes: 3 << 20 + 5)
            #expect(tcp.wallSeconds > 0)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "potluck-bench-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (write, read) = try RingBenchmarks.fileThroughRing(
                Ring(options: options), path: directory.path, totalBytes: 5 << 20 + 123)
            #expect(write.wallSeconds > 0 && read.wallSeconds > 0)
            let attributes = try FileManager.default.attributesOfItem(atPath: directory.path)
            #expect(attributes[.size] as? Int == 5 << 20 + 123)
        }
    }
}
