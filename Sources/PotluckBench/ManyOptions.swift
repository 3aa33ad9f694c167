import ArgumentParser
import CommandSupport

/// What `bench many` and `bench daemon` share on the command line: the clients, the restarts, the idle
/// readings' length, the limits and where things go.
struct ManyOptions: ParsableArguments {
    @Option(
        name: .customLong("client"), parsing: .upToNextOption,
        help: "Clients to measure, in order (potluck, transmission).")
    var clients: [String] = ["potluck", "transmission"]

    @Option(help: "Restarts, each timed with another random torrent.")
    var restarts = 3

    @Option(
        name: .customLong("idle-seconds"), help: "Seconds idle CPU is measured over (reported per 10 s).")
    var idleSeconds = 10

    @Option(
        name: .customLong("settle-seconds"),
        help: """
            Seconds of quiet, once the client has served, before the idle readings: long enough for \
            Potluck's seeds to rest (they leave their reactor after 30 s without a peer).
            """)
    var settleSeconds = 40

    @Option(help: "Seconds a first start may take (Transmission verifies 10-20 torrents a second).")
    var timeout = 3600

    @OptionGroup var placement: BenchPlacement

    func validate() throws {
        guard (1...20).contains(restarts) else { throw ValidationError("--restarts must be in 1...20") }
        guard timeout >= 10 else { throw ValidationError("--timeout must be at least 10 seconds") }
        guard (1...600).contains(idleSeconds) else {
            throw ValidationError("--idle-seconds must be in 1...600")
        }
        guard (0...600).contains(settleSeconds) else {
            throw ValidationError("--settle-seconds must be in 0...600")
        }
        let kinds = try parseClients(clients, option: "--client")
        guard !kinds.isEmpty, kinds.allSatisfy({ $0 == .potluck || $0 == .transmission }) else {
            throw ValidationError(
                "--client: potluck or transmission (the clients measured holding many torrents)")
        }
    }

    var kinds: [ClientKind] { (try? parseClients(clients, option: "--client")) ?? [] }

    /// A run in --directory, root when Transmission is measured.
    func startRun(_ what: String) throws -> BenchRun {
        try placement.startRun(what, needsRoot: kinds.contains(.transmission))
    }

    /// The set's torrents the leechers ask for, chosen at random: one after the first start, then one
    /// for each restart.
    func chosenTorrents(of set: ManyTorrents) -> [String] {
        let picks = Array((0..<set.count).shuffled().prefix(restarts + 1))
        return (0...restarts).map { set.name(picks[$0 % picks.count]) }
    }
}
