import Foundation
import Glibc
import Testing

/// Peers that ask a Potluck seeder for what they must not: each is refused (BEP 6 reject) or dropped
/// with a logged reason, the seeder's memory stays bounded, and it keeps serving honest peers.
@Suite(.serialized) struct HostileRequesterTests {
    static func hostile(
        _ torrent: String, _ mode: String, _ address: String, _ extra: [String] = []
    ) throws
        -> [String: Any]
    {
        let result = try SeedInteropTests.harness(
            "hostile_peer.py", [torrent, mode, "--connect", address] + extra)
        #expect(result.status == 0, "hostile_peer.py \(mode) failed")
        #expect(result.json["unchoked"] as? Bool == true, "\(mode): the seeder never unchoked")
        return result.json
    }

    static func residentKiB(of pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test func malformedAndFloodingRequestsAreRefusedOrDropped() throws {
        // 13 MB in 64 KiB pieces: more distinct blocks than our request limit (500).
        let (root, data) = try Interop.makePayload(sizes: [12_000_000, 1_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let address = "127.0.0.1:\(port)"
        let log = root.appendingPathComponent("seeder.log")
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: address, logFile: log)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        let oversized = try Self.hostile(torrent, "request-oversized", address, ["--fast"])
        #expect(oversized["disconnected"] as? Bool == true && oversized["blocks"] as? Int == 0)
        let outOfRange = try Self.hostile(torrent, "request-range", address)
        #expect(outOfRange["disconnected"] as? Bool == true)
        // Without BEP 6 there is no way to refuse: a flood past our limit ends the connection.
        let flood = try Self.hostile(torrent, "request-flood", address, ["--count", "700"])
        #expect(flood["disconnected"] as? Bool == true)
        // With it, every request gets exactly one answer: a block, or a reject past the limit.
        let fastFlood = try Self.hostile(torrent, "request-flood", address, ["--count", "700", "--fast"])
        #expect(fastFlood["disconnected"] as? Bool == false)
        let blocks = fastFlood["blocks"] as? Int ?? 0
        let rejects = fastFlood["rejects"] as? Int ?? 0
        #expect(blocks + rejects == 700 && rejects > 0 && blocks <= 500, "\(fastFlood)")
        // The upload cache (64 MiB) and buffers (8 MiB) bound what the floods could make us hold.
        #expect(Self.residentKiB(of: seeder.process.processIdentifier) < 160 * 1024)

        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(text.contains("request names an invalid block"), "\(text)")
        #expect(text.contains("of a torrent with"), "\(text)")
        #expect(text.contains("501 requests, limit 500"), "\(text)")

        // Still serving honest peers.
        let target = root.appendingPathComponent("libtorrent")
        let libtorrent = try SeedInteropTests.harness(
            "lt.py", ["download", torrent, target.path, "--peer", address, "--timeout", "60"])
        #expect(libtorrent.status == 0, "\(libtorrent.json)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }

    @Test func requestsForPiecesWeLackAreRejectedWithFastAndIgnoredWithout() throws {
        let (root, data) = try Interop.makePayload(sizes: [2_000_000, 1_000_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        // The second file is missing: pieces 31 and up fail the seeder's check.
        let second = data.appendingPathComponent("sub/file1.bin")
        try Data(count: 10).write(to: second)
        let port = SeedInteropTests.freePort(on: "127.0.0.1")
        let address = "127.0.0.1:\(port)"
        let seeder = try SeedInteropTests.PotluckSeeder(
            torrent: torrent, data: data.deletingLastPathComponent(), listen: address)
        seeder.waitUntilListening(host: "127.0.0.1", port: port)

        let fast = try Self.hostile(torrent, "request-lacking", address, ["--piece", "40", "--fast"])
        #expect(fast["rejects"] as? Int == 1 && fast["blocks"] as? Int == 0)
        #expect(fast["disconnected"] as? Bool == false)
        let plain = try Self.hostile(torrent, "request-lacking", address, ["--piece", "40"])
        #expect(plain["blocks"] as? Int == 0 && plain["disconnected"] as? Bool == false)
        let have = try Self.hostile(torrent, "request-lacking", address, ["--piece", "3", "--fast"])
        #expect(have["blocks"] as? Int == 1 && have["rejects"] as? Int == 0)
    }
}
