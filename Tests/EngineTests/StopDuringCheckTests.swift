import Foundation
import Hashing
import Metainfo
import Testing

@testable import Engine

/// A session asked to stop while it checks existing data: the check's reads and hash jobs finish before
/// the session lets its buffers go, and nothing is trusted or saved. A check interrupted with hash jobs
/// outstanding once handed their results to the download path, which trapped on a piece it never
/// requested (found seeding 10,000 torrents that ran out of descriptors and were all told to stop).
@Suite struct StopDuringCheckTests {
    @Test(arguments: [1, 3, 5, 9, 17])
    func stoppingDuringTheCheckEndsCleanlyAndSavesNothing(stopAtCall: Int) throws {
        let pieceLength = 16 * 1024
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("potluck-stop-during-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let payload = [UInt8](repeating: 0x5a, count: 4 << 20)
        try Data(payload).write(to: directory.appendingPathComponent("check.bin"))
        var builder = TorrentBuilder(
            name: "check.bin",
            files: [TorrentBuilder.File(path: ["check.bin"], length: Int64(payload.count))],
            pieceLength: pieceLength, format: .v1)
        builder.pieceHashesV1 = stride(from: 0, to: payload.count, by: pieceLength).map {
            SHA1.hash(payload[$0..<min($0 + pieceLength, payload.count)])
        }
        let metainfo = try Metainfo(bytes: builder.build())

        let session = DownloadSession(
            metainfo: metainfo, options: DownloadOptions(downloadDirectory: directory.path, peers: []))
        var calls = 0
        let outcome = try session.run(
            shouldStop: {
                calls += 1
                return calls >= stopAtCall
            }, status: { _ in })
        #expect(outcome == .interrupted)
        let saved = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".potluck-resume") }
        #expect(saved.isEmpty, "an interrupted check vouches for nothing, so it saves nothing")
    }
}
