import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Potluck against baselines measured in the same run.",
        discussion: """
            Every figure is printed beside a baseline measured moments before on the same machine, \
            because absolute numbers drift on shared machines; the ratios are what to compare. \
            With no subcommand, runs every benchmark with short defaults.
            """,
        subcommands: [BenchAll.self, BenchHash.self, BenchRing.self, BenchCreate.self, BenchDownload.self],
        defaultSubcommand: BenchAll.self
    )
}

struct BenchAll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Run every benchmark with short defaults (the default).")

    func run() throws {
        try BenchHash.parse([]).measure()
        print()
        try BenchRing.parse([]).measure()
    }
}
