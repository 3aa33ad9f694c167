import ArgumentParser

/// `potluck bench`: the benchmarks, each a subcommand in a file of its own.
public struct Bench: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Potluck against baselines measured in the same run.",
        discussion: """
            Every figure is printed beside a baseline measured moments before on the same machine, \
            because absolute numbers drift on shared machines; the ratios are what to compare. \
            With no subcommand, runs `bench quick`: `bench compare` with short defaults (about a \
            minute on 2 cores; root needed).
            """,
        subcommands: [
            BenchQuick.self, BenchCompare.self, BenchSwarm.self, BenchAll.self, BenchHash.self,
            BenchRing.self,
            BenchCreate.self,
            BenchDownload.self,
            BenchMany.self,
            BenchDaemon.self,
            BenchReactors.self,
            BenchMagnet.self,
            BenchSoak.self,
        ],
        defaultSubcommand: BenchQuick.self
    )

    public init() {}
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

struct BenchQuick: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quick",
        abstract: "A short `bench compare` (the default): 256 MiB, 4 seeders, 4 leechers, about a minute.",
        discussion: """
            Every installed client downloads 256 MiB from 4 libtorrent seeders, then Potluck, libtorrent \
            and Transmission each seed it to 4 libtorrent leechers. `potluck bench compare` takes the \
            same options and more (8 leechers by default, --leechers 32, --link).
            """)

    @OptionGroup var options: SwarmOptions

    func run() throws {
        try BenchCompare.execute(
            options, seeders: 4, leechers: 4, clients: ClientKind.allCases,
            seederClients: [.potluck, .libtorrent, .transmission], leech: true)
    }
}
