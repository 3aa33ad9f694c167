import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// Choosing files and the order of pieces, against real libtorrent seeders: the chosen files arrive
/// byte for byte, skipped ones hold at most the bytes of pieces they share with chosen ones, a second
/// run with a wider choice completes the rest, and sequential or streaming order loses nothing.
@Suite(.serialized) struct FileSelectionInteropTests {
    /// A file of the torrent as `potluck info --json` lists it, with where it starts in the payload.
    struct ListedFile {
        var index: Int
        var path: String
        var size: Int
        var offset: Int
    }

    static func listedFiles(_ torrent: String) throws -> [ListedFile] {
        let info = try runPotluck(["info", "--json", torrent])
        #expect(info.status == 0, "\(info.error)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any])
        let entries = try #require(object["files"] as? [[String: Any]])
        var offset = 0
        var files: [ListedFile] = []
        for entry in entries {
            let index = try #require(entry["index"] as? Int)
            // No padding in these torrents: indices follow one another, so offsets add up.
            #expect(index == files.count)
            let size = try #require(entry["size"] as? Int)
            files.append(
                ListedFile(
                    index: index, path: try #require(entry["path"] as? String), size: size, offset: offset))
            offset += size
        }
        return files
    }

    /// Bytes of a skipped file that lie in pieces shared with a wanted file: the most it may hold.
    static func straddlingRanges(
        of file: ListedFile, wanted: [ListedFile], pieceSize: Int
    ) -> [Range<Int>] {
        let wantedPieces = Set(
            wanted.filter { $0.size > 0 }.flatMap {
                ($0.offset / pieceSize)...(($0.offset + $0.size - 1) / pieceSize)
            })
        guard file.size > 0 else { return [] }
        return (file.offset / pieceSize...(file.offset + file.size - 1) / pieceSize)
            .filter { wantedPieces.contains($0) }
            .map { piece in
                max(piece * pieceSize, file.offset) - file.offset..<min(
                    (piece + 1) * pieceSize, file.offset + file.size) - file.offset
            }
    }

    @Test func onlyTheChosenFilesThenAWiderChoiceCompletesTheRest() throws {
        let (root, data) = try Interop.makePayload(sizes: [300_000, 200_001, 450_000, 100_003])
        defer { try? FileManager.default.removeItem(at: root) }
        let pieceSize = 65_536
        let torrent = try Interop.create(data, pieceSize: "64K")
        let files = try Self.listedFiles(torrent)
        #expect(files.count == 4)
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 2)
        let target = root.appendingPathComponent("download")

        let first = try DownloadInteropTests.download(
            torrent, into: target, peers: peers, extra: ["--only", "sub/*"])
        #expect(first.status == 0, "\(first.error)")
        let wanted = files.filter { $0.path.contains("/sub/") }
        let skipped = files.filter { !$0.path.contains("/sub/") }
        #expect(wanted.count == 2 && skipped.count == 2)
        let seedFolder = data.deletingLastPathComponent()
        for file in wanted {
            #expect(
                FileManager.default.contentsEqual(
                    atPath: seedFolder.appendingPathComponent(file.path).path,
                    andPath: target.appendingPathComponent(file.path).path), "\(file.path) differs")
        }
        for file in skipped {
            let path = target.appendingPathComponent(file.path).path
            guard let bytes = FileManager.default.contents(atPath: path).map(Array.init) else { continue }
            let allowed = Self.straddlingRanges(of: file, wanted: wanted, pieceSize: pieceSize)
            let original = try #require(
                FileManager.default.contents(atPath: seedFolder.appendingPathComponent(file.path).path))
            for (offset, byte) in bytes.enumerated() where byte != 0 {
                guard allowed.contains(where: { $0.contains(offset) }) else {
                    Issue.record(
                        "\(file.path) holds data at \(offset), outside pieces shared with chosen files")
                    break
                }
                #expect(byte == original[offset])
            }
            #expect(bytes != Array(original), "\(file.path) was downloaded though skipped")
            var info = stat()
            #expect(stat(path, &info) == 0)
            let allowedBytes = allowed.reduce(0) { $0 + $1.count }
            #expect(
                Int(info.st_blocks) * 512 <= allowedBytes + allowed.count * 2 * 4096,
                "\(file.path) takes \(info.st_blocks * 512) bytes on disk for \(allowedBytes) straddling")
        }

        let second = try DownloadInteropTests.download(
            torrent, into: target, peers: peers, extra: ["--only", "*"])
        #expect(second.status == 0, "\(second.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }

    @Test(arguments: [["--sequential"], ["--stream-window", "1"]])
    func piecesInOrderArriveIntact(order: [String]) throws {
        let (root, data) = try Interop.makePayload(sizes: [3_000_001, 700_000])
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "3",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 3)
        let target = root.appendingPathComponent("download")
        let result = try DownloadInteropTests.download(torrent, into: target, peers: peers, extra: order)
        #expect(result.status == 0, "\(result.error)")
        #expect(Interop.sameContents(data, target.appendingPathComponent("payload")))
    }
}
