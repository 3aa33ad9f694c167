import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Potluck against baselines measured in the same run.",
        discussion: """
            Every figure is printed beside a baseline measured moments before on the same machine, \
            because absolute numbers drift on shared machines; the ratios are what to compare. \
            With no subcommand, runs `bench compare` with short defaults (256 MiB; about a minute on \
            2 cores; root needed).
            """,
        subcommands: [
            BenchCompare.self, BenchSwarm.self, BenchAll.self, BenchHash.self, BenchRing.self,
            BenchCreate.self,
            BenchDownload.self,
        ],
        defaultSubcommand: BenchCompare.self
    )
}

struct BenchAll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Hashing and io_uring beside their baselines, with short defaults.")

    func run() throws {
        try BenchHash.parse([]).measure()
        print()
        try BenchRing.parse([]).measure()
    }
}
