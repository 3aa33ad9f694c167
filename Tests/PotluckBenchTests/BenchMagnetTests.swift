import Testing

@testable import PotluckBench

@Suite struct BenchMagnetTests {
    @Test func downloadsLastLineGivesTheMetadatasAndTheWholeTime() {
        let times = BenchMagnet.times(in: "completed payload: 64.0 MiB in 1.27 s (metadata after 0.08 s)")
        #expect(times?.metadata == 0.08 && times?.total == 1.27)
        // A name holding " in " is read from the end.
        #expect(
            BenchMagnet.times(in: "completed in in out: 2 KiB in 3.50 s (metadata after 1.00 s)")?.total
                == 3.5)
        #expect(BenchMagnet.times(in: "completed payload: 64.0 MiB in 1.27 s") == nil)
    }
}
