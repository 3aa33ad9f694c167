import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// A full disk, end to end: `potluck download` into a small tmpfs stops with a clear message, and
/// once there is room again the same command resumes without fetching again what was verified.
@Suite(.serialized) struct DiskFullTests {
    /// A tmpfs of `sizeMiB` at `directory` (root only, as the interop tests are).
    static func mountTmpfs(at directory: URL, sizeMiB: Int) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let result = try ExternalCommand.run(
            "/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeMiB)m", "tmpfs", directory.path],
            mergeStandardError: true)
        try #require(result.status == 0, "mount: \(result.standardOutput)")
    }

    static func resizeTmpfs(at directory: URL, sizeMiB: Int) throws {
        let result = try ExternalCommand.run(
            "/usr/bin/mount", ["-o", "remount,size=\(sizeMiB)m", directory.path], mergeStandardError: true)
        try #require(result.status == 0, "remount: \(result.standardOutput)")
    }

    static func unmount(_ directory: URL) {
        _ = try? ExternalCommand.run("/usr/bin/umount", ["-l", directory.path])
    }

    /// The number in a log line such as "check found 17 of 128 pieces on disk".
    static func piecesKept(in log: String) -> Int? {
        for line in log.split(separator: "\n") {
            for prefix in ["check found ", "resume data: "] where line.hasPrefix(prefix) {
                return Int(line.dropFirst(prefix.count).prefix { $0.isNumber })
            }
        }
        return nil
    }

    @Test func fullDiskStopsTheDownloadAndRoomAgainResumesIt() throws {
        let (root, data) = try Interop.makePayload(sizes: [8 << 20], single: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
        ])
        defer { seeders.stop() }
        let peers = seeders.ready?["peers"] as? [String] ?? []
        #expect(peers.count == 2)

        let target = root.appendingPathComponent("small-disk")
        try Self.mountTmpfs(at: target, sizeMiB: 3)
        defer { Self.unmount(target) }
        let full = try DownloadInteropTests.download(
            torrent, into: target, peers: peers, extra: ["--verbose"])
        #expect(full.status == 1)
        #expect(full.error.contains("disk is full"), "\(full.error)")

        try Self.resizeTmpfs(at: target, sizeMiB: 16)
        let resumed = try DownloadInteropTests.download(
            torrent, into: target, peers: peers, extra: ["--verbose"])
        #expect(resumed.status == 0, "\(resumed.error)")
        // What was verified before the disk filled is kept: roughly the 3 MiB that fitted.
        let kept = try #require(Self.piecesKept(in: resumed.error), "\(resumed.error)")
        #expect(kept >= 16 && kept < 128, "\(kept) pieces kept")
        #expect(
            FileManager.default.contentsEqual(
                atPath: data.path, andPath: target.appendingPathComponent("single.bin").path))
    }

    @Test func preallocationFindsAFullDiskBeforeWriting() throws {
        let (root, data) = try Interop.makePayload(sizes: [8 << 20], single: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let torrent = try Interop.create(data, pieceSize: "64K")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path,
        ])
        defer { seeders.stop() }
        let target = root.appendingPathComponent("small-disk")
        try Self.mountTmpfs(at: target, sizeMiB: 3)
        defer { Self.unmount(target) }
        let result = try DownloadInteropTests.download(
            torrent, into: target, peers: seeders.ready?["peers"] as? [String] ?? [],
            extra: ["--preallocate"])
        #expect(result.status == 1)
        #expect(
            result.error.contains("preallocate") && result.error.contains("disk is full"), "\(result.error)")
        // Nothing but the failed reservation touched the disk: no piece was written.
        var status = stat()
        let path = target.appendingPathComponent("single.bin").path
        if stat(path, &status) == 0 { #expect(status.st_blocks == 0, "\(status.st_blocks) blocks written") }
    }

    @Test func aFullDiskStillTellsTheTrackerWeAreGone() throws {
        let setup = try TrackerInteropTests.payloadAndTracker(sizes: [6 << 20])
        defer {
            setup.tracker.stop()
            try? FileManager.default.removeItem(at: setup.root)
        }
        let torrent = try TrackerInteropTests.create(setup.data, trackers: [setup.http], name: "t.torrent")
        let seeders = try harnessProcess([
            Interop.tool("lt.py"), "seed", torrent, setup.data.deletingLastPathComponent().path,
        ])
        defer { seeders.stop() }
        _ = try TrackerInteropTests.waitForSeeders(1, torrent: torrent)
        let target = setup.root.appendingPathComponent("small-disk")
        try Self.mountTmpfs(at: target, sizeMiB: 2)
        defer { Self.unmount(target) }
        let result = try runPotluck(["download", "-q", "--verbose", torrent, "-o", target.path])
        #expect(result.status == 1)
        #expect(result.error.contains("disk is full"), "\(result.error)")
        #expect(result.error.contains("tracker \(setup.http): stopped answered"), "\(result.error)")
    }
}
