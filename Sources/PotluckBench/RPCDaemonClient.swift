import CommandSupport
import Foundation
import Glibc

/// A daemon that speaks Transmission's RPC — `potluck daemon` or transmission-daemon — as `bench
/// daemon` drives it. Its torrents go in once, after its first start, by torrent-add with the metainfo
/// (the same door for both daemons); at later starts they come back from the daemon's own state.
final class RPCDaemonClient: ManyClient {
    /// A torrent file to add and the folder that holds its data.
    struct Addition {
        let path: String
        let downloadDirectory: String
    }

    let peer: String
    let leecherBind: String?
    /// Seeding counts come from torrent-get, rationed in `seedingCount`, so polling may be quick.
    let pollMicroseconds: UInt32 = 100_000
    let rpc: TransmissionRPCClient
    /// Seconds from the latest start until the RPC first answered.
    private(set) var answeredSeconds: Double?
    private let spawn: () throws -> ChildProcess
    private let additions: [Addition]
    private var added = false
    private var seeding = 0
    private var nextListing = ContinuousClock.now

    /// Seconds the RPC may take to answer after a start.
    static let answerTimeoutSeconds = 300.0

    init(
        peer: String, leecherBind: String?, rpc: String, additions: [Addition],
        spawn: @escaping () throws -> ChildProcess
    ) throws {
        self.peer = peer
        self.leecherBind = leecherBind
        self.rpc = try TransmissionRPCClient(address: rpc)
        self.additions = additions
        self.spawn = spawn
    }

    /// Starts the daemon and returns once its RPC answers (and, the first time, every torrent is added).
    func launch() throws -> ChildProcess {
        let process = try spawn()
        answeredSeconds = nil
        seeding = 0
        nextListing = ContinuousClock.now
        while (try? rpc.call("session-get", timeoutSeconds: 10)) == nil {
            if process.reap() {
                throw ExternalCommand.Failure(
                    description: "it exited (status \(process.exitStatus ?? -1)) before its RPC answered: "
                        + ManySeeder.lastLines(process))
            }
            guard seconds(ContinuousClock.now - process.started) < Self.answerTimeoutSeconds else {
                throw ExternalCommand.Failure(
                    description: "its RPC did not answer within \(Int(Self.answerTimeoutSeconds)) s")
            }
            usleep(10_000)
        }
        answeredSeconds = seconds(ContinuousClock.now - process.started)
        if !added {
            added = true
            try addAll()
        }
        return process
    }

    private func addAll() throws {
        for addition in additions {
            guard let bytes = FileManager.default.contents(atPath: addition.path) else {
                throw ExternalCommand.Failure(description: "cannot read \(addition.path)")
            }
            let reply = try rpc.call(
                "torrent-add",
                ["metainfo": bytes.base64EncodedString(), "download-dir": addition.downloadDirectory])
            guard reply.arguments["torrent-added"] ?? reply.arguments["torrent-duplicate"] != nil else {
                throw ExternalCommand.Failure(
                    description: "torrent-add \(addition.path): no torrent in the answer")
            }
        }
    }

    /// Torrents whose status is seeding (6), from a torrent-get of every torrent. Listing thousands
    /// costs the daemon, so a new listing is asked for no sooner than four times the last one took
    /// (and 0.1 s) after it: polling takes at most a fifth of the daemon's RPC time.
    func seedingCount() -> Int {
        guard ContinuousClock.now >= nextListing,
            let reply = try? rpc.call("torrent-get", ["fields": ["id", "status"]])
        else { return seeding }
        nextListing = ContinuousClock.now + .seconds(max(0.1, 4 * reply.seconds))
        let torrents = reply.arguments["torrents"] as? [[String: Any]] ?? []
        seeding = torrents.count { ($0["status"] as? Int) == 6 }
        return seeding
    }
}
