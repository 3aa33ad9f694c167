import CommandSupport
import Foundation
import Glibc

/// transmission-daemon with a private configuration folder, as the benchmarks that hold many torrents
/// run it: no DHT, PEX, LPD, uTP, limits or queues, RPC on loopback without authentication. It listens
/// for peers on the root-side address of a harness veth, because Transmission 3.00 ignores peers at
/// 127.x; leechers connect from that veth's other addresses (which needs root).
struct TransmissionDaemonSetup {
    let configDirectory: String
    /// HOST:PORT of its RPC.
    let rpc: String
    /// HOST:PORT where leechers reach it.
    let peer: String
    /// Addresses a leecher may bind to. Transmission 3.00 drops a peer from an address that has already
    /// completed the same torrent, so each download of one torrent needs an address of its own.
    let leecherAddresses: [String]

    init(run: BenchRun, downloadDirectory: String, leecherAddresses count: Int = 1) throws {
        let namespace = try run.createNamespace(rootAddresses: count)
        let address = namespace.addresses[0]
        configDirectory = run.workspace + "/transmission"
        rpc = "127.0.0.1:\(SwarmFixture.freePort(on: "127.0.0.1"))"
        let peerPort = SwarmFixture.freePort(on: address)
        peer = "\(address):\(peerPort)"
        leecherAddresses = Array(namespace.addresses.dropFirst())
        let settings: [String: Any] = [
            "dht-enabled": false, "pex-enabled": false, "lpd-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "blocklist-enabled": false,
            "peer-port": peerPort, "peer-port-random-on-start": false, "bind-address-ipv4": address,
            "rpc-enabled": true, "rpc-bind-address": "127.0.0.1",
            "rpc-port": Int(rpc.split(separator: ":")[1])!, "rpc-authentication-required": false,
            "rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
            "download-dir": downloadDirectory, "incomplete-dir-enabled": false, "watch-dir-enabled": false,
            "rename-partial-files": false, "start-added-torrents": true,
            "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
            "speed-limit-up-enabled": false, "speed-limit-down-enabled": false, "alt-speed-enabled": false,
            "download-queue-enabled": false, "seed-queue-enabled": false, "queue-stalled-enabled": false,
            "scrape-paused-torrents-enabled": false, "encryption": 0, "message-level": 1,
        ]
        mkdir(configDirectory, 0o700)
        guard let data = try? JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted]),
            FileManager.default.createFile(atPath: configDirectory + "/settings.json", contents: data)
        else {
            throw ExternalCommand.Failure(description: "cannot write Transmission's settings")
        }
    }

    /// Starts transmission-daemon in the foreground; it keeps its torrents in the configuration folder.
    func spawn(run: BenchRun) throws -> ChildProcess {
        try run.spawn(
            "/usr/bin/transmission-daemon", ["--foreground", "--config-dir", configDirectory],
            label: "transmission-daemon")
    }
}
