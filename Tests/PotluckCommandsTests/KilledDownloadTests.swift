import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// `kill -9` in the middle of a download, then the same command again: every piece that was verified
/// and written before the kill is kept, not fetched again. Resume data alone kept 76–83 % of them,
/// because it is saved only every 30 s; now the pieces on disk that it does not vouch for are checked
/// at start.
@Suite(.serialized) struct KilledDownloadTests {
    static let pieceBytes = 64 * 1024

    /// The pieces of `copy` that equal the same piece of `original`: what a correct check must keep.
    static func matchingPieces(_ original: Data, _ copy: URL) -> Int {
        guard let bytes = FileManager.default.contents(atPath: copy.path) else { return 0 }
        var count = 0
        for start in stride(from: 0, to: original.count, by: pieceBytes) {
            let end = min(start + pieceBytes, original.count)
            if end <= bytes.count && bytes[start..<end] == original[start..<end] { count += 1 }
        }
        return count
    }

    /// The pieces a run started with, from its `--verbose` log: the check's total, or else what
    /// resume data alone vouched for.
    static func piecesKept(in log: String) -> Int? {
        var kept: Int?
        for line in log.split(separator: "\n") {
            for prefix in ["check found ", "resume data: "] where line.hasPrefix(prefix) {
                kept = Int(line.dropFirst(prefix.count).prefix { $0.isNumber })
            }
        }
        return kept
    }

    /// Starts the download and kills it with SIGKILL once `seconds` have passed and `ready` holds for
    /// what it has logged so far (at most 60 s, so a slow start, under a sanitizer say, is waited for);
    /// returns its standard error.
    static func downloadKilled(
        after seconds: Double, arguments: [String], once ready: (String) -> Bool
    ) throws -> String {
        let process = Process()
        process.executableURL = potluckExecutable()
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let fd = errors.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var log: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let start = Date()
        while Date().timeIntervalSince(start) < 60 {
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                log += buffer[..<count]
            }
            if Date().timeIntervalSince(start) >= seconds && ready(String(decoding: log, as: UTF8.self)) {
                break
            }
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGKILL)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        log += readAll(errors.fileHandleForReading)
        process.waitUntilExit()
        return String(decoding: log, as: UTF8.self)
    }

    /// The saved resume file in `directory`, if any.
    static func resumeFile(in directory: URL) -> String? {
        (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?.first {
            $0.hasSuffix(".potluck-resume")
        }
    }

    @Test func everyPieceWrittenBeforeAKillIsKept() throws {
        let (root, data) = try Interop.makePayload(sizes: [24 << 20], single: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let original = try Data(contentsOf: data)
        let torrent = try Interop.create(data, pieceSize: "64K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        try #require(peers.count == 2)
        let target = root.appendingPathComponent("download")
        let copy = target.appendingPathComponent("single.bin")
        // 6 MiB/s: the 24 MiB take about four seconds, killed along the way; resume data is saved every
        // second so that kills also land just after (and sometimes during) a save.
        let arguments =
            ["download", torrent, "-o", target.path, "--no-trackers", "--verbose", "--quiet"]
            + peers.flatMap { ["--peer", $0] } + ["--max-download-rate", "6M", "--resume-save-interval", "1"]

        var onDiskAtKill: Int?
        for (step, seconds) in [0.8, 1.2, 0.7, 1.3, 0.9].enumerated() {
            // Killed once it has said what it kept, and before the torn-save step once a save exists.
            let log = try Self.downloadKilled(after: seconds, arguments: arguments) { log in
                (step == 0 || Self.piecesKept(in: log) != nil)
                    && (step != 2 || Self.resumeFile(in: target) != nil)
            }
            if let before = onDiskAtKill {
                let kept = try #require(Self.piecesKept(in: log), "step \(step): \(log)")
                #expect(kept >= before, "step \(step): \(before) pieces were on disk, \(kept) kept")
            }
            onDiskAtKill = Self.matchingPieces(original, copy)
            if step == 2 {
                // A save torn halfway (as if killed inside it, were it not written aside and renamed):
                // refused, and everything on disk is checked instead.
                let saved = try #require(Self.resumeFile(in: target))
                let path = target.appendingPathComponent(saved).path
                let bytes = try #require(FileManager.default.contents(atPath: path))
                try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
            }
        }
        let finished = try runPotluck(arguments)
        #expect(finished.status == 0, "\(finished.error)")
        let kept = try #require(Self.piecesKept(in: finished.error), "\(finished.error)")
        #expect(kept >= onDiskAtKill ?? 0, "\(onDiskAtKill ?? 0) pieces were on disk, \(kept) kept")
        #expect(FileManager.default.contentsEqual(atPath: data.path, andPath: copy.path))
    }
}
