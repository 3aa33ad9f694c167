import Foundation
import Glibc
import Testing

/// A swarm on loopback: one Potluck seeder, two Potluck leechers and two libtorrent leechers. The
/// seeder's upload is limited, so the swarm only finishes in time if leechers trade among themselves;
/// each leecher must have received some payload from another leecher, not only from the seeder.
@Suite(.serialized) struct SwarmTradeInteropTests {
    /// `potluck download --seed --verbose` in the background, its log in a file.
    final class PotluckLeecher {
        let process = Process()
        let logFile: URL

        init(torrent: String, output: URL, listen: String, peers: [String], logFile: URL) throws {
            self.logFile = logFile
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
            process.executableURL = potluckExecutable()
            process.arguments =
                [
                    "download", torrent, "-o", output.path, "--listen", listen, "--seed", "--verbose",
                    "--quiet",
                ]
                + peers.flatMap { ["--peer", $0] }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: logFile)
            try process.run()
        }

        var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

        /// Stops it (Ctrl-C): it logs each connection's totals on the way out.
        func stop() {
            guard process.isRunning else { return }
            process.interrupt()
            process.waitUntilExit()
        }

        deinit { stop() }

        /// Payload bytes received from peers other than `excluded`, from the `totals` log lines.
        func bytesReceived(excluding excluded: String) -> Int {
            var total = 0
            for line in log.split(separator: "\n") where line.hasPrefix("peer ") && line.contains(" totals: ")
            {
                let words = line.split(separator: " ")
                guard words.count > 4, words[1] != excluded, let bytes = Int(words[4]) else { continue }
                total += bytes
            }
            return total
        }
    }

    @Test func leechersTradeAmongThemselves() throws {
        let (root, data) = try Interop.makePayload(sizes: [5_000_000, 1_300_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let host = "127.0.0.1"
        let ports = (0..<5).map { _ in SeedInteropTests.freePort(on: host) }
        let seederAddress = "\(host):\(ports[0])"
        let potluckAddresses = ["\(host):\(ports[1])", "\(host):\(ports[2])"]
        let libtorrentAddresses = ["\(host):\(ports[3])", "\(host):\(ports[4])"]
        let everyone = [seederAddress] + potluckAddresses + libtorrentAddresses
        // Typically about half; a twentieth shows trading without depending on timing.
        let minimumFromLeechers = 6_300_000 / 20

        // 6.3 MB to each of four leechers is 25 MB: about 17 s from the seeder alone at 1.5 MiB/s.
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: seederAddress,
            extra: ["--max-upload-rate", "1.5M"])
        seeder.waitUntilListening(host: host, port: ports[0])

        var potluckLeechers: [PotluckLeecher] = []
        for (index, address) in potluckAddresses.enumerated() {
            potluckLeechers.append(
                try PotluckLeecher(
                    torrent: torrent, output: root.appendingPathComponent("potluck\(index)"), listen: address,
                    peers: everyone.filter { $0 != address },
                    logFile: root.appendingPathComponent("potluck\(index).log")))
        }
        var libtorrentLeechers: [(process: Process, output: Pipe)] = []
        for (index, address) in libtorrentAddresses.enumerated() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments =
                [
                    Interop.tool("lt.py"), "download", torrent,
                    root.appendingPathComponent("lt\(index)").path,
                    "--port", String(address.split(separator: ":")[1]), "--timeout", "90",
                ] + everyone.filter { $0 != address }.flatMap { ["--peer", $0] }
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            libtorrentLeechers.append((process, output))
        }

        for (index, leecher) in libtorrentLeechers.enumerated() {
            let result = readAll(leecher.output.fileHandleForReading)
            leecher.process.waitUntilExit()
            let line = String(decoding: result, as: UTF8.self).split(separator: "\n").last {
                $0.hasPrefix("{")
            }
            let json =
                line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                ?? [:]
            #expect(leecher.process.terminationStatus == 0, "libtorrent leecher \(index): \(json)")
            #expect(Interop.sameContents(data, root.appendingPathComponent("lt\(index)/payload")))
            let byPeer = json["bytes_by_peer"] as? [String: Int] ?? [:]
            let fromLeechers = byPeer.filter { $0.key != seederAddress }.values.reduce(0, +)
            #expect(
                fromLeechers >= minimumFromLeechers,
                "libtorrent leecher \(index) got everything from the seeder: \(byPeer)")
        }
        for (index, leecher) in potluckLeechers.enumerated() {
            let deadline = Date().addingTimeInterval(90)
            while !leecher.log.contains("seeding payload") && leecher.process.isRunning && Date() < deadline {
                usleep(100_000)
            }
            #expect(Interop.sameContents(data, root.appendingPathComponent("potluck\(index)/payload")))
        }
        for leecher in potluckLeechers { leecher.stop() }
        for (index, leecher) in potluckLeechers.enumerated() {
            let fromLeechers = leecher.bytesReceived(excluding: seederAddress)
            #expect(
                fromLeechers >= minimumFromLeechers,
                "Potluck leecher \(index) got everything from the seeder:\n\(leecher.log)")
        }
    }
}
