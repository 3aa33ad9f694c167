import Foundation
import Testing

@testable import PotluckBench

/// `potluck download --incomplete-dir`: the download lands in the incomplete folder, moves to the
/// download folder (here on another file system: a copy) once verified, and the same command run again
/// finds it there, complete, without fetching or checking anything.
@Suite(.serialized) struct IncompleteFolderTests {
    @Test func aFinishedDownloadMovesToTheDownloadFolder() throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_000, 500_000, 77])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "32K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 2)

        let partial = root.appendingPathComponent("partial")
        let completed = URL(fileURLWithPath: "/dev/shm/potluck-completed-\(UUID())")
        defer { try? FileManager.default.removeItem(at: completed) }
        let arguments = ["--incomplete-dir", partial.path, "--verbose", "--no-dht", "--no-lsd"]
        let first = try DownloadInteropTests.download(
            torrent, into: completed, peers: peers, extra: arguments)
        #expect(first.status == 0, "\(first.error)")
        #expect(first.error.contains("the files to \(completed.path)"), "\(first.error)")
        #expect(Interop.sameContents(data, completed.appendingPathComponent("payload")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: partial.path) == [])

        let pieces = (3_500_077 + 32_767) / 32_768
        let again = try DownloadInteropTests.download(
            torrent, into: completed, peers: peers, extra: arguments)
        #expect(again.status == 0, "\(again.error)")
        #expect(DiskFullTests.piecesKept(in: again.error) == pieces, "\(again.error)")
        #expect(!again.error.contains("moving"), "\(again.error)")
    }
}
