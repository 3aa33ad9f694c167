import Dispatch
import Foundation
import Glibc
import Locking
import Testing

@testable import PotluckBench

/// Real clients download from a Potluck seeder.
@Suite(.serialized) struct SeedInteropTests {
    /// A port nobody uses right now on `host` (the benchmark harness's choice, as a port number).
    static func freePort(on host: String) -> UInt16 { UInt16(SwarmFixture.freePort(on: host)) }

    /// `potluck seed` in the background until the test ends.
    final class PotluckSeeder {
        let process = Process()

        /// With `logFile`, it runs with --verbose and logs there.
        convenience init(
            torrent: String, data: URL, listen: String, extra: [String] = [], logFile: URL? = nil
        ) throws {
            try self.init(torrents: [torrent], data: data, listen: listen, extra: extra, logFile: logFile)
        }

        init(torrents: [String], data: URL, listen: String, extra: [String] = [], logFile: URL? = nil) throws
        {
            process.executableURL = potluckExecutable()
            process.arguments =
                ["seed"] + torrents + ["--data", data.path, "--listen", listen, "--quiet"] + extra
                + (logFile == nil ? [] : ["--verbose"])
            process.standardOutput = FileHandle.nullDevice
            if let logFile {
                _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
                process.standardError = try FileHandle(forWritingTo: logFile)
            } else {
                process.standardError = FileHandle.nullDevice
            }
            try process.run()
        }

        /// Waits until the seeder accepts connections (it checks its data first).
        func waitUntilListening(host: String, port: UInt16) {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                inet_pton(AF_INET, host, &address.sin_addr)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                close(fd)
                if connected == 0 { return }
                usleep(50_000)
            }
        }

        deinit {
            process.interrupt()
            process.waitUntilExit()
        }
    }

    static func harness(_ tool: String, _ arguments: [String]) throws -> (status: Int32, json: [String: Any])
    {
        let result = try CreateInteropTests.run("/usr/bin/python3", [Interop.tool(tool)] + arguments)
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") }
        let object = line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        return (result.status, object ?? [:])
    }

    /// libtorrent opens with the encryption exchange (MSE/PE, its default): the seeder answers it,
    /// choosing plaintext, instead of dropping the connection and waiting for a plain retry.
    @Test func libtorrentDownloadsFromAPotluckSeeder() throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_000, 500_001, 16_384])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let port = Self.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)",
            logFile: log)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        let viaLibtorrent = root.appendingPathComponent("libtorrent")
        let libtorrent = try Self.harness(
            "lt.py",
            ["download", torrent, viaLibtorrent.path, "--peer", "127.0.0.1:\(port)", "--timeout", "60"])
        #expect(libtorrent.status == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, viaLibtorrent.appendingPathComponent("payload")))
        let seederLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(seederLog.contains("encrypted handshake (MSE/PE) done, plaintext selected"), "\(seederLog)")
        #expect(!seederLog.contains("malformed handshake"), "\(seederLog)")
    }

    /// BEP 9: libtorrent, given only the magnet link and the seeder's address, fetches the info
    /// dictionary from the seeder, then the payload.
    @Test func libtorrentFetchesTheMetadataFromAPotluckSeeder() throws {
        let (root, data) = try Interop.makePayload(sizes: [700_000, 40_001])
        defer { try? FileManager.default.removeItem(at: root) }
        // About 2 KiB of pieces: the info dictionary spans one metadata piece; 16 KiB pieces make more.
        let torrent = try Interop.create(data, pieceSize: "16K")
        let port = Self.freePort(on: "127.0.0.1")
        let seeder = try PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)")
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        let fetched = root.appendingPathComponent("libtorrent")
        let libtorrent = try Self.harness(
            "lt.py",
            ["download", torrent, fetched.path, "--magnet", "--peer", "127.0.0.1:\(port)", "--timeout", "60"])
        #expect(libtorrent.status == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, fetched.appendingPathComponent("payload")))
    }

    /// Regression: aria2 sends a bitfield (or have-all) mid-connection in place of haves, and the
    /// seeder dropped it for that ("bitfield is not the first message after the handshake").
    @Test func aria2DownloadsFromAPotluckSeeder() throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_000, 500_001, 16_384, 1])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let port = Self.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)",
            logFile: log)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        // aria2c learns peers only from a tracker: aria2.py announces the seeder to a private opentracker.
        let target = root.appendingPathComponent("aria2")
        let aria2 = try Self.harness(
            "aria2.py", ["download", torrent, target.path, "--peer", "127.0.0.1:\(port)", "--timeout", "60"])
        #expect(aria2.status == 0, "\(aria2.json)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        // aria2 also opens with the encryption exchange by default.
        let seederLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(seederLog.contains("encrypted handshake (MSE/PE) done, plaintext selected"), "\(seederLog)")
    }

    /// `--max-upload-rate` paces the transfer and `--seed-ratio 1` ends the seeder after one full copy,
    /// with every queued block still delivered.
    @Test func uploadRateLimitAndSeedRatio() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_500_000, 600_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let port = Self.freePort(on: "127.0.0.1")
        let seeder = try PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)",
            extra: ["--max-upload-rate", "1M", "--seed-ratio", "1"])
        seeder.waitUntilListening(host: "127.0.0.1", port: port)
        let target = root.appendingPathComponent("libtorrent")
        let libtorrent = try Self.harness(
            "lt.py", ["download", torrent, target.path, "--peer", "127.0.0.1:\(port)", "--timeout", "60"])
        #expect(libtorrent.status == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        // 3.1 MB at 1 MiB/s with a 100 KiB burst: at least 2.8 s.
        let seconds = libtorrent.json["seconds"] as? Double ?? 0
        #expect(seconds >= 2.8, "an upload limit of 1 MiB/s served 3.1 MB in \(seconds) s")
        let deadline = Date().addingTimeInterval(10)
        while seeder.process.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!seeder.process.isRunning, "the seeder kept running past --seed-ratio 1")
        #expect(seeder.process.isRunning || seeder.process.terminationStatus == 0)
    }

    /// `potluck seed A B`: one listening port, each peer routed to the torrent its handshake names, and
    /// one upload limit for both.
    @Test func severalTorrentsOnOneListenPort() throws {
        let (root, first) = try Interop.makePayload(sizes: [2_500_000, 500_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let seedDirectory = first.deletingLastPathComponent()
        let second = seedDirectory.appendingPathComponent("second")
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true)
        try Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }).write(
            to: second.appendingPathComponent("other.bin"))
        let firstTorrent = try Interop.create(first, pieceSize: "64K")
        let secondTorrent = root.appendingPathComponent("second.torrent").path
        let made = try runPotluck([
            "create", "-q", "--v1", "--piece-size", "32K", "-o", secondTorrent, second.path,
        ])
        #expect(made.status == 0, "\(made.error)")
        let port = Self.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try PotluckSeeder(
            torrents: [firstTorrent, secondTorrent], data: seedDirectory, listen: "127.0.0.1:\(port)",
            extra: ["--max-upload-rate", "1M"], logFile: log)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        // Both at once: 6 MB under one 1 MiB/s limit takes the later one at least 5.5 s; a limit per
        // torrent would let both finish in about 3 s.
        let downloads = [(firstTorrent, "payload", first), (secondTorrent, "second", second)]
        // Status and seconds of each download (JSON dictionaries are not Sendable).
        let results = Lock<[Int: (status: Int32, seconds: Double, json: String)]>([:])
        DispatchQueue.concurrentPerform(iterations: downloads.count) { index in
            let (torrent, name, _) = downloads[index]
            let target = root.appendingPathComponent("download-\(name)")
            let result = try? Self.harness(
                "lt.py", ["download", torrent, target.path, "--peer", "127.0.0.1:\(port)", "--timeout", "60"])
            let summary = (
                status: result?.status ?? -1, seconds: result?.json["seconds"] as? Double ?? 0,
                json: "\(result?.json ?? [:])"
            )
            results.withLock { $0[index] = summary }
        }
        var slowest = 0.0
        for (index, (_, name, source)) in downloads.enumerated() {
            let stored: (status: Int32, seconds: Double, json: String)? = results.withLock { $0[index] }
            guard let result = stored else {
                Issue.record("\(name): no result")
                continue
            }
            #expect(result.status == 0, "\(name): \(result.json)")
            #expect(
                Interop.sameContents(
                    source, root.appendingPathComponent("download-\(name)").appendingPathComponent(name)))
            slowest = max(slowest, result.seconds)
        }
        #expect(slowest >= 5, "6 MB under a shared 1 MiB/s limit took \(slowest) s")
        // A torrent it does not serve is turned away, with a reason.
        let (otherRoot, otherData) = try Interop.makePayload(sizes: [100_000])
        defer { try? FileManager.default.removeItem(at: otherRoot) }
        let otherTorrent = try Interop.create(otherData, pieceSize: "16K")
        let stranger = try Self.harness(
            "hostile_peer.py", [otherTorrent, "request-lacking", "--connect", "127.0.0.1:\(port)"])
        #expect(stranger.status == 0 && stranger.json["unchoked"] as? Bool != true)
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(text.contains("asks for a torrent we do not serve"), "\(text)")
        // libtorrent opened with the encryption exchange; the router answered it for both torrents.
        #expect(text.components(separatedBy: "encrypted handshake (MSE/PE) done").count >= 3, "\(text)")
        #expect(!text.contains("encrypted handshake refused"), "\(text)")
    }

    /// `--max-connections` caps sockets across every torrent: with room for one, the second torrent's
    /// leecher is turned away (with a log line) while the first is served, and gets in once it is done.
    @Test func oneConnectionBudgetCoversAllTorrents() throws {
        let (root, first) = try Interop.makePayload(sizes: [1_500_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let seedDirectory = first.deletingLastPathComponent()
        let second = seedDirectory.appendingPathComponent("second")
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true)
        try Data((0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 5) }).write(
            to: second.appendingPathComponent("other.bin"))
        let firstTorrent = try Interop.create(first, pieceSize: "64K")
        let secondTorrent = root.appendingPathComponent("second.torrent").path
        let made = try runPotluck(["create", "-q", "--piece-size", "32K", "-o", secondTorrent, second.path])
        #expect(made.status == 0, "\(made.error)")
        let port = Self.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try PotluckSeeder(
            torrents: [firstTorrent, secondTorrent], data: seedDirectory, listen: "127.0.0.1:\(port)",
            extra: ["--max-connections", "1", "--max-upload-rate", "1M"], logFile: log)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        let downloads = [(firstTorrent, "payload", first), (secondTorrent, "second", second)]
        let statuses = Lock<[Int: Int32]>([:])
        DispatchQueue.concurrentPerform(iterations: downloads.count) { index in
            let (torrent, name, _) = downloads[index]
            let target = root.appendingPathComponent("download-\(name)")
            let result = try? Self.harness(
                "lt.py", ["download", torrent, target.path, "--peer", "127.0.0.1:\(port)", "--timeout", "60"])
            statuses.withLock { $0[index] = result?.status ?? -1 }
        }
        for (index, (_, name, source)) in downloads.enumerated() {
            #expect(statuses.withLock { $0[index] } == 0, "\(name)")
            #expect(
                Interop.sameContents(
                    source, root.appendingPathComponent("download-\(name)").appendingPathComponent(name)))
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(text.contains("1 connections already across all torrents"), "\(text)")
    }

    @Test func transmissionDownloadsFromAPotluckSeeder() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_000_000, 123_457])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        // Transmission ignores 127.x peers: the seeder listens on the root side of a harness namespace.
        let namespace = try Self.harness("netns.py", ["create"])
        let netns = try #require(namespace.json["netns"] as? String)
        defer { _ = try? Self.harness("netns.py", ["delete", netns]) }
        let host = try #require(namespace.json["root_address"] as? String)
        let port = Self.freePort(on: host)
        let seeder = try PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: "\(host):\(port)")
        seeder.waitUntilListening(host: host, port: port)

        let target = root.appendingPathComponent("transmission")
        let transmission = try Self.harness(
            "transmission.py",
            [
                "download", torrent, target.path, "--peer", "\(host):\(port)", "--timeout", "90", "--netns",
                netns,
            ])
        #expect(transmission.status == 0, "\(transmission.json)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }
}

/// Storage faults under a seeding process: the torrent whose data went away stops with a clear error,
/// the others go on, and what is still on disk is found again at the next start.
@Suite(.serialized) struct SeedingStorageFaultTests {
    @Test func aFileTruncatedUnderASeedingTorrentStopsItAndTheOthersGoOn() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_000_000, 500_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let otherData = root.appendingPathComponent("seed/other.bin")
        try Data((0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: otherData)
        let other = root.appendingPathComponent("other.torrent").path
        #expect(try runPotluck(["create", "-q", "--v1", "-o", other, otherData.path]).status == 0)
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let log = root.appendingPathComponent("seeder.log")
        var seeder: SeedInteropTests.PotluckSeeder? = try SeedInteropTests.PotluckSeeder(
            torrents: [torrent, other], data: data.deletingLastPathComponent(), listen: "127.0.0.1:\(port)",
            extra: ["--no-dht", "--no-lsd"], logFile: log)
        seeder?.waitUntilListening(host: "127.0.0.1", port: port)
        // Both torrents are seeding once their checks are done (each saves resume data then).
        let first = data.appendingPathComponent(
            try FileManager.default.contentsOfDirectory(atPath: data.path).sorted()[0])
        #expect(Self.eventually(20) { Self.text(log).components(separatedBy: "seeding ").count > 2 })
        try FileHandle(forWritingTo: first).truncate(atOffset: 300_000)

        let broken = try SeedInteropTests.harness(
            "lt.py",
            [
                "download", torrent, root.appendingPathComponent("lt").path, "--peer", "127.0.0.1:\(port)",
                "--timeout", "8",
            ])
        #expect(broken.status != 0)
        let fine = try SeedInteropTests.harness(
            "lt.py",
            [
                "download", other, root.appendingPathComponent("lt2").path, "--peer", "127.0.0.1:\(port)",
                "--timeout", "30",
            ])
        let seederLog = Self.text(log)
        #expect(fine.status == 0, "\(fine.json)\nseeder:\n\(seederLog.suffix(3000))")
        #expect(seederLog.contains("payload: stopped: storage: cannot read"), "\(seederLog)")
        #expect(seederLog.contains("shorter than the torrent says"))
        // Said once or twice, not once per refused request.
        #expect(
            seederLog.components(separatedBy: "upload read failed").count <= 3, "\(seederLog.suffix(2000))")
        seeder = nil

        // Started again: resume data vouches for what was not touched; the truncated file is checked,
        // and what it still holds is kept.
        let againLog = root.appendingPathComponent("again.log")
        let again = try SeedInteropTests.PotluckSeeder(
            torrents: [torrent], data: data.deletingLastPathComponent(),
            listen: "127.0.0.1:\(SeedInteropTests.freePort(on: "127.0.0.1"))",
            extra: ["--no-dht", "--no-lsd"],
            logFile: againLog)
        #expect(Self.eventually(20) { Self.text(againLog).contains("check found") }, "\(Self.text(againLog))")
        _ = again
        let found = Self.text(againLog).components(separatedBy: "check found ").dropFirst().first?
            .prefix { $0.isNumber }
        let pieces = Int(found ?? "") ?? -1
        #expect(pieces > 0 && pieces < 39, "\(Self.text(againLog))")
    }

    static func text(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    static func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }
}
