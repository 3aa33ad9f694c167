import ArgumentParser

/// Where a benchmark works and reports, the same options for every benchmark that runs other clients.
struct BenchPlacement: ParsableArguments {
    @Option(help: "Directory for the benchmark's payloads, downloads and state (removed afterwards).")
    var directory = "/var/tmp"

    @Option(
        help: "The interop harness folder (default: the build's copy of Tests/Interop beside the binary).")
    var harness: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    /// A fresh run in `directory` with the harness, root when `needsRoot`; says what is missing and
    /// throws otherwise.
    func startRun(_ what: String, needsRoot: Bool) throws -> BenchRun {
        try BenchRun.start(what, needsRoot: needsRoot, directory: directory, harness: harness)
    }
}
