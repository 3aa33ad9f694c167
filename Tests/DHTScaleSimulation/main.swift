// Issue #15's simulated DHT at scale (see ScaleScenario), built in release by scripts/test: 10,000
// nodes take minutes in a debug build. Exits 1 when a lookup or a table breaks the scenario's bounds.
//
//   potluck-dht-simulation [node-count] [seed]
import DHTSimulation

#if canImport(Glibc)
    import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst()
let nodeCount = arguments.first.flatMap { Int($0) } ?? 10_000
let seed = arguments.dropFirst().first.flatMap { UInt64($0) } ?? 0x5ca1_e010
let scenario = ScaleScenario(nodeCount: nodeCount, seed: seed)
let clock = ContinuousClock()
let started = clock.now
let report = scenario.run()
print("dht simulation (seed \(seed)): \(report); \(clock.now - started) wall-clock")
for miss in report.misses { print("dht simulation: a miss: \(miss)") }
let failures = scenario.failures(of: report)
for failure in failures { print("✘ dht simulation: \(failure)") }
exit(failures.isEmpty ? 0 : 1)
