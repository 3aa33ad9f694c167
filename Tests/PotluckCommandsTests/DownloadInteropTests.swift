import Dispatch
import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// A harness tool (a seeder) run by Debian's Python, through the same helper the benchmarks use.
func harnessProcess(_ arguments: [String]) throws -> BackgroundProcess {
    try BackgroundProcess("/usr/bin/python3", arguments, timeoutSeconds: 120)
}

enum Interop {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Interop")

    static func tool(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A folder `payload` inside a fresh scratch folder, holding files of the given sizes with random bytes.
    static func makePayload(sizes: [Int], single: Bool = false) throws -> (root: URL, data: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-dl-\(UUID())")
        let seedDirectory = root.appendingPathComponent("seed")
        try FileManager.default.createDirectory(at: seedDirectory, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        func random(_ count: Int) -> Data {
            var bytes = [UInt8](repeating: 0, count: count)
            var i = 0
            while i < count {
                var word = generator.next()
                for _ in 0..<8 where i < count {
                    bytes[i] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    i += 1
                }
            }
            return Data(bytes)
        }
        if single {
            let file = seedDirectory.appendingPathComponent("single.bin")
            try random(sizes[0]).write(to: file)
            return (root, file)
        }
        let folder = seedDirectory.appendingPathComponent("payload")
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        for (index, size) in sizes.enumerated() {
            let name = index % 2 == 0 ? "file\(index).bin" : "sub/file\(index).bin"
            try random(size).write(to: folder.appendingPathComponent(name))
        }
        return (root, folder)
    }

    /// Every file under `a` has an identical twin under `b`.
    static func sameContents(_ a: URL, _ b: URL) -> Bool {
        guard let items = FileManager.default.enumerator(atPath: a.path) else { return false }
        var count = 0
        for case let item as String in items {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(
                atPath: a.appendingPathComponent(item).path, isDirectory: &isDirectory)
            if !exists || isDirectory.boolValue { continue }
            count += 1
            guard
                FileManager.default.contentsEqual(
                    atPath: a.appendingPathComponent(item).path, andPath: b.appendingPathComponent(item).path)
            else {
                return false
            }
        }
        return count > 0
    }

    static func create(_ data: URL, pieceSize: String, format: String = "v1") throws -> String {
        let torrent = data.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "t.torrent"
        ).path
        let made = try runPotluck([
            "create", "-q", "--force", "--\(format)", "--piece-size", pieceSize, "-o", torrent, data.path,
        ])
        #expect(made.status == 0, "\(made.error)")
        return torrent
    }
}

@Suite(.serialized) struct DownloadInteropTests {
    static func download(
        _ torrent: String, into directory: URL, peers: [String], extra: [String] = []
    ) throws -> (status: Int32, output: String, error: String) {
        try runPotluck(
            ["download", "-q", torrent, "-o", directory.path] + peers.flatMap { ["--peer", $0] } + extra)
    }

    @Test(arguments: [
        ("16K", [100_000, 16_384 * 5, 3]),
        ("256K", [3_000_001, 700_000, 262_144]),
        ("16M", [5_000_000, 123]),
    ])
    func fromFourLibtorrentSeeders(pieceSize: String, sizes: [Int]) throws {
        let (root, data) = try Interop.makePayload(sizes: sizes)
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: pieceSize)
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "4",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 4)
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target, peers: peers)
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }

    /// `--max-download-rate` paces the download; `--seed --seed-time` seeds for that long, then exits 0.
    @Test func downloadRateLimitAndSeedTime() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_500_000, 600_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []

        let limited = root.appendingPathComponent("limited")
        var started = Date()
        let slow = try Self.download(
            torrent, into: limited, peers: peers, extra: ["--max-download-rate", "1M"])
        let slowSeconds = Date().timeIntervalSince(started)
        #expect(slow.status == 0, "\(slow.error)")
        #expect(Interop.sameContents(data, limited.appendingPathComponent("payload")))
        // 3.1 MB at 1 MiB/s: at least 2.5 s even with what is in flight when the limit bites.
        #expect(slowSeconds >= 2.5, "a 1 MiB/s limit downloaded 3.1 MB in \(slowSeconds) s")

        let seeding = root.appendingPathComponent("seeding")
        started = Date()
        let seeded = try Self.download(
            torrent, into: seeding, peers: peers,
            extra: ["--seed", "--seed-time", "2s", "--listen", "127.0.0.1:0"])
        let seededSeconds = Date().timeIntervalSince(started)
        #expect(seeded.status == 0, "\(seeded.error)")
        #expect(Interop.sameContents(data, seeding.appendingPathComponent("payload")))
        #expect(seededSeconds >= 2 && seededSeconds < 30, "seeded for \(seededSeconds) s with --seed-time 2s")
    }

    @Test func singleFileNotAMultipleOfThePieceSize() throws {
        let (root, data) = try Interop.makePayload(sizes: [4_000_037], single: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let target = root.appendingPathComponent("download")
        let result = try Self.download(
            torrent, into: target, peers: seeders.ready?["peers"] as? [String] ?? [])
        #expect(result.status == 0, "\(result.error)")
        #expect(
            FileManager.default.contentsEqual(
                atPath: data.path, andPath: target.appendingPathComponent("single.bin").path))
    }

    @Test func fromATransmissionSeederAndAMix() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_500_000, 1_000_001])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let transmission = try harnessProcess([
            Interop.tool("transmission.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { transmission.stop() }
        let peer = try #require(transmission.ready?["peer"] as? String, "Transmission did not start seeding")
        let alone = root.appendingPathComponent("from-transmission")
        let result = try Self.download(torrent, into: alone, peers: [peer])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, alone.appendingPathComponent("payload")))

        let libtorrent = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { libtorrent.stop() }
        let mixed = root.appendingPathComponent("from-mix")
        let mixResult = try Self.download(
            torrent, into: mixed, peers: [peer] + (libtorrent.ready?["peers"] as? [String] ?? []))
        #expect(mixResult.status == 0, "\(mixResult.error)")
        #expect(Interop.sameContents(data, mixed.appendingPathComponent("payload")))
    }

    /// One peer corrupting every block among two honest seeders: it spoils at most two pieces before it
    /// is banned (it was six, while its pipeline kept filling during the first piece's hash; probation
    /// holds it to two pieces until one passes, and alone the sender of a failed piece it is banned on
    /// that failure), and the pieces it spoiled pass from honest peers.
    @Test func liarIsBannedAfterAtMostTwoPiecesAndTheDownloadCompletesFromHonestPeers() throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let liar = try harnessProcess([Interop.tool("hostile_peer.py"), torrent, "corrupt"])
        defer { liar.stop() }
        let honest = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
            "--upload-rate", "1000000",
        ])
        defer { honest.stop() }
        let liarPeers = (liar.ready?["peer"] as? String).map { [$0] } ?? []
        let honestPeers = honest.ready?["peers"] as? [String] ?? []
        #expect(liarPeers.count == 1 && honestPeers.count == 2)
        let target = root.appendingPathComponent("download")
        let result = try Self.download(
            torrent, into: target, peers: liarPeers + honestPeers, extra: ["--verbose"])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        let failures = result.error.split(separator: "\n").filter { $0.contains("failed its hash check") }
        let ban = result.error.split(separator: "\n").first { $0.contains("banned") } ?? "no ban"
        print("one liar among two honest seeders: \(failures.count) pieces spoiled; \(ban)")
        #expect(!failures.isEmpty, "the liar's pieces must have been caught")
        #expect(
            failures.count <= 2,
            "\(failures.count) pieces spoiled before the ban:\n\(failures.joined(separator: "\n"))")
        #expect(result.error.contains("peer \(liarPeers.first ?? "?"): banned"), "\(result.error)")
        // Alone the sender of its first piece, it is banned when that piece fails, not when an honest
        // copy passes later and block digests convict it.
        #expect(ban.contains("banned: sent pieces that failed their hash"), "\(ban)")
    }

    @Test(arguments: ["unrequested", "oversized"])
    func protocolViolatorsAreDropped(mode: String) throws {
        let (root, data) = try Interop.makePayload(sizes: [1_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let hostile = try harnessProcess([Interop.tool("hostile_peer.py"), torrent, mode])
        defer { hostile.stop() }
        let honest = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "1",
        ])
        defer { honest.stop() }
        let hostilePeer = try #require(hostile.ready?["peer"] as? String)
        let target = root.appendingPathComponent("download")
        let result = try Self.download(
            torrent, into: target, peers: [hostilePeer] + (honest.ready?["peers"] as? [String] ?? []),
            extra: ["--verbose"])
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
        #expect(result.error.contains("peer \(hostilePeer): protocol:"), "\(result.error)")
    }

    @Test func killedMidDownloadResumesAndCompletes() throws {
        let (root, data) = try Interop.makePayload(sizes: [12_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        // Slow seeders, so that the first run is surely killed half-way.
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
            "--upload-rate", "1500000",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        let target = root.appendingPathComponent("download")
        let first = Process()
        first.executableURL = potluckExecutable()
        first.arguments = ["download", "-q", torrent, "-o", target.path] + peers.flatMap { ["--peer", $0] }
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        // Wait until some data is on disk, then kill -9.
        let file = target.appendingPathComponent("payload/file0.bin").path
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            if size > 2_000_000 { break }
            usleep(50_000)
        }
        Glibc.kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(
            first.terminationReason == .uncaughtSignal, "the first run must have been killed, not finished")

        let second = try Self.download(torrent, into: target, peers: peers)
        #expect(second.status == 0, "\(second.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }

    @Test func seederKilledMidTransferTheOtherFinishes() throws {
        let (root, data) = try Interop.makePayload(sizes: [6_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let doomed = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "1",
            "--upload-rate", "1000000",
        ])
        let survivor = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "1",
            "--upload-rate", "2000000",
        ])
        defer {
            doomed.stop()
            survivor.stop()
        }
        let peers =
            (doomed.ready?["peers"] as? [String] ?? []) + (survivor.ready?["peers"] as? [String] ?? [])
        let killed = DispatchGroup()
        killed.enter()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.8) {
            doomed.kill()
            killed.leave()
        }
        let target = root.appendingPathComponent("download")
        let result = try Self.download(torrent, into: target, peers: peers)
        killed.wait()
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }
}
