import Foundation
import Glibc
import Testing

@testable import PotluckBench

/// Storage faults under a real download (the `potluck` binary, libtorrent seeders): a read-only
/// folder, a file replaced mid-download by a directory, a symbolic link or another file, a file system
/// turned read-only, an I/O error from the file system. Each stops the torrent with a message naming
/// the file or folder and the cause, never writes through a symbolic link, and keeps what was
/// verified: the same command, once the fault is gone, starts from it and finishes byte-identical. A
/// fault in one torrent stops only that torrent.
///
/// This kernel has no device-mapper (no `error` target), so I/O errors come from an ext4 file system
/// on a loop device shut down with `FS_IOC_SHUTDOWN` (the call xfstests use to simulate a dying
/// disk): every write after it fails with EIO. The read-only case is ext4's own `errors=remount-ro`
/// reaction to an error (`trigger_fs_error`): a tmpfs cannot be remounted read-only while a file on it
/// is open for writing (EBUSY), and ext4 turns read-only under open files just as it does on a real
/// fault.
@Suite(.serialized) struct StorageFaultTests {
    static let pieceBytes = 64 * 1024
    /// Slow enough that a fault lands mid-download: 6 MiB take about three seconds.
    static let rate = "2M"

    /// A payload of files (by default three of 2 MiB: `NAME/file0.bin`, `NAME/sub/file1.bin`,
    /// `NAME/file2.bin`), its torrent named `name`, and two libtorrent seeders of it.
    struct Swarm {
        let root: URL
        let data: URL
        let torrent: String
        let seeders: BackgroundProcess
        let peers: [String]
        /// The torrent's files in piece order, relative to the payload folder, with their sizes.
        let files: [(path: String, size: Int)]

        init(name: String = "payload", sizes: [Int] = [2 << 20, 2 << 20, 2 << 20]) throws {
            let made = try Interop.makePayload(sizes: sizes)
            root = made.root
            data = made.data.deletingLastPathComponent().appendingPathComponent(name)
            if data.path != made.data.path { try FileManager.default.moveItem(at: made.data, to: data) }
            torrent = try Interop.create(data, pieceSize: "64K")
            seeders = try harnessProcess([
                Interop.tool("lt.py"), "seed", torrent, data.deletingLastPathComponent().path, "--count", "2",
            ])
            peers = seeders.ready?["peers"] as? [String] ?? []
            let info = try ExternalCommand.run("/usr/bin/python3", [Interop.tool("lt.py"), "info", torrent])
            let object =
                try JSONSerialization.jsonObject(with: Data(info.standardOutput.utf8)) as? [String: Any]
            let entries = object?["files"] as? [[String: Any]] ?? []
            // libtorrent names each file with the torrent's name in front.
            files = entries.compactMap { entry in
                guard let path = entry["path"] as? String, let size = entry["size"] as? Int else {
                    return nil
                }
                return (String(path.split(separator: "/", maxSplits: 1).last ?? ""), size)
            }
        }

        func stop() {
            seeders.stop()
            try? FileManager.default.removeItem(at: root)
        }

        func arguments(into target: URL) -> [String] {
            ["download", torrent, "-o", target.path, "--no-trackers", "--verbose", "--quiet"]
                + peers.flatMap { ["--peer", $0] } + ["--max-download-rate", StorageFaultTests.rate]
        }

        /// The pieces of the download in `payload` that equal the original and lie wholly outside the
        /// file at `excluded`: what a correct restart must keep.
        func intactPieces(in payload: URL, excluding excluded: String?) throws -> Int {
            var original = Data()
            var copy = Data()
            var excludedRange = 0..<0
            for file in files {
                if file.path == excluded { excludedRange = original.count..<original.count + file.size }
                original += try Data(contentsOf: data.appendingPathComponent(file.path))
                var bytes =
                    file.path == excluded
                    ? Data()
                    : (FileManager.default.contents(atPath: payload.appendingPathComponent(file.path).path)
                        ?? Data())
                bytes = bytes.prefix(file.size)
                copy += bytes + Data(count: file.size - bytes.count)
            }
            var count = 0
            for start in stride(from: 0, to: original.count, by: StorageFaultTests.pieceBytes) {
                let end = min(start + StorageFaultTests.pieceBytes, original.count)
                if excludedRange.overlaps(start..<end) { continue }
                if copy[start..<end] == original[start..<end] { count += 1 }
            }
            return count
        }
    }

    /// Bytes the file at `path` holds on disk (sparse holes not counted); 0 if it does not exist.
    static func allocatedBytes(_ path: String) -> Int {
        var info = stat()
        return lstat(path, &info) == 0 ? Int(info.st_blocks) * 512 : 0
    }

    /// Runs `potluck` with `arguments`; once `ready` holds (checked every 20 ms, for at most 60 s) it
    /// applies `fault` while the download goes on, then waits for the exit (killed after 120 s), or
    /// with `stopOnce`, for that to hold (at most 60 s) and then stops it with SIGINT (Ctrl-C).
    /// Returns the exit status, standard error, and whether the fault was applied.
    static func runWithFault(
        _ arguments: [String], once ready: () -> Bool, fault: () throws -> Void, stopOnce: (() -> Bool)? = nil
    ) throws -> (status: Int32, error: String, faulted: Bool) {
        let process = Process()
        process.executableURL = potluckExecutable()
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let log = BackgroundRead(errors.fileHandleForReading)
        let start = Date()
        var faulted = false
        while process.isRunning && Date().timeIntervalSince(start) < 60 {
            if ready() {
                do {
                    try fault()
                } catch {
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                    throw error
                }
                faulted = true
                break
            }
            usleep(20_000)
        }
        if let stopOnce {
            let faultTime = Date()
            while process.isRunning && !stopOnce() && Date().timeIntervalSince(faultTime) < 60 {
                usleep(20_000)
            }
            kill(process.processIdentifier, SIGINT)
        }
        while process.isRunning && Date().timeIntervalSince(start) < 120 { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: log.wait(), as: UTF8.self), faulted)
    }

    /// Whether the download wrote to the victim file and to another one: a fault now lands mid-download.
    static func writing(_ victim: URL, andAnyOf others: [URL]) -> Bool {
        allocatedBytes(victim.path) >= 4 * pieceBytes
            && others.contains { allocatedBytes($0.path) >= pieceBytes }
    }

    // MARK: A read-only folder

    static func remount(_ directory: URL, _ mode: String) throws {
        let result = try ExternalCommand.run(
            "/usr/bin/mount", ["-o", "remount,\(mode)", directory.path], mergeStandardError: true)
        try #require(result.status == 0, "remount: \(result.standardOutput)")
    }

    /// A download into a read-only folder is refused before any peer is asked for anything; one whose
    /// data is all there needs no write, and still completes.
    @Test func aReadOnlyFolderIsRefusedAtOnceNamingIt() throws {
        let swarm = try Swarm()
        defer { swarm.stop() }
        let target = swarm.root.appendingPathComponent("read-only")
        // Root ignores permission bits: only a read-only mount stops it.
        try DiskFullTests.mountTmpfs(at: target, sizeMiB: 16)
        defer { DiskFullTests.unmount(target) }
        try Self.remount(target, "ro")

        let result = try runPotluck(swarm.arguments(into: target))
        #expect(result.status == 1)
        #expect(
            result.error.contains("cannot write in the download folder \"\(target.path)\"")
                && result.error.contains("read-only (EROFS)"), "\(result.error)")
        // At once: before any peer was asked for a block.
        #expect(!result.error.contains("totals: received"), "\(result.error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path).isEmpty)

        try Self.remount(target, "rw")
        try FileManager.default.copyItem(at: swarm.data, to: target.appendingPathComponent("payload"))
        try Self.remount(target, "ro")
        let complete = try runPotluck(swarm.arguments(into: target))
        #expect(complete.status == 0, "\(complete.error)")
        #expect(complete.error.contains("check found 96 of 96 pieces"), "\(complete.error)")
    }

    // MARK: A file replaced mid-download

    enum Replacement: String, CaseIterable, Sendable {
        case directory = "a directory"
        case symbolicLink = "a symbolic link"
        /// Bytes that are not the torrent's, in a file of the right size.
        case anotherFile = "another file"
    }

    /// With resume data saved every second, saves also land between the replacement and its discovery;
    /// none may vouch for the replacing file's bytes.
    @Test(arguments: Replacement.allCases)
    func aFileReplacedMidDownloadStopsItAndTheOtherFilesAreKept(by replacement: Replacement) throws {
        let swarm = try Swarm()
        defer { swarm.stop() }
        try #require(swarm.peers.count == 2 && swarm.files.count == 3)
        let target = swarm.root.appendingPathComponent("download")
        let payload = target.appendingPathComponent("payload")
        let victimPath = "sub/file1.bin"
        let victim = payload.appendingPathComponent(victimPath)
        let others = swarm.files.map(\.path).filter { $0 != victimPath }.map {
            payload.appendingPathComponent($0)
        }
        // Outside the download folder: a symbolic link to it must never lead a write there.
        let outside = swarm.root.appendingPathComponent("outside.txt")
        let outsideBytes = Data("not to be overwritten\n".utf8)
        try outsideBytes.write(to: outside)

        let arguments = swarm.arguments(into: target) + ["--resume-save-interval", "1"]
        // Another file takes the victim's place in one rename, as an editor saves one.
        let otherFile = swarm.root.appendingPathComponent("other.bin")
        let victimSize = swarm.files.first { $0.path == victimPath }?.size ?? 0
        try Data((0..<victimSize).map { _ in UInt8.random(in: 0...255) }).write(to: otherFile)
        let failed = try Self.runWithFault(arguments, once: { Self.writing(victim, andAnyOf: others) }) {
            switch replacement {
            case .directory:
                try FileManager.default.removeItem(at: victim)
                try FileManager.default.createDirectory(at: victim, withIntermediateDirectories: false)
            case .symbolicLink:
                try FileManager.default.removeItem(at: victim)
                try FileManager.default.createSymbolicLink(at: victim, withDestinationURL: outside)
            case .anotherFile:
                try #require(rename(otherFile.path, victim.path) == 0)
            }
        }
        try #require(failed.faulted, "the download ended before the fault: \(failed.error)")
        #expect(failed.status == 1, "\(failed.error)")
        #expect(
            failed.error.contains("potluck: storage: cannot write \"payload/\(victimPath)\"")
                && failed.error.contains(
                    "replaced or removed while being written (it is now \(replacement.rawValue))"),
            "\(failed.error)")
        #expect(try Data(contentsOf: outside) == outsideBytes)
        let intact = try swarm.intactPieces(in: payload, excluding: victimPath)
        #expect(intact > 0)

        if replacement != .anotherFile {
            // The fault stays: the next run refuses the path again, and still writes nothing through it.
            let refused = try runPotluck(arguments)
            #expect(refused.status == 1)
            #expect(refused.error.contains("\"payload/\(victimPath)\""), "\(refused.error)")
            #expect(try Data(contentsOf: outside) == outsideBytes)
            try FileManager.default.removeItem(at: victim)
        }
        // A replacing file stays: only a check of its bytes, never resume data, may vouch for them.
        let resumed = try runPotluck(arguments)
        #expect(resumed.status == 0, "\(resumed.error)")
        let kept = try #require(KilledDownloadTests.piecesKept(in: resumed.error), "\(resumed.error)")
        #expect(kept >= intact, "\(intact) pieces of the other files were on disk, \(kept) kept")
        #expect(Interop.sameContents(swarm.data, payload))
        #expect(try Data(contentsOf: outside) == outsideBytes)
    }

    // MARK: The file system fails

    /// An ext4 file system in a file, on a loop device, mounted at `directory`.
    struct LoopFileSystem {
        let image: URL
        let directory: URL
        let device: String

        init(image: URL, directory: URL, sizeMiB: Int) throws {
            self.image = image
            self.directory = directory
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try #require(FileManager.default.createFile(atPath: image.path, contents: nil))
            try #require(truncate(image.path, off_t(sizeMiB << 20)) == 0)
            let made = try ExternalCommand.run(
                "/usr/sbin/mkfs.ext4", ["-q", "-F", image.path], mergeStandardError: true)
            try #require(made.status == 0, "mkfs.ext4: \(made.standardOutput)")
            let attached = try ExternalCommand.run(
                "/usr/sbin/losetup", ["-f", "--show", image.path], mergeStandardError: true)
            try #require(attached.status == 0, "losetup: \(attached.standardOutput)")
            device = attached.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            do {
                try mount()
            } catch {
                detach()
                throw error
            }
        }

        /// Unmounted, repaired and mounted again until a file can be written in it: on a busy machine
        /// the mount could come back still failing every write, as the faulted one did.
        func comeBack() throws {
            let probe = directory.appendingPathComponent(".probe")
            for _ in 0..<10 {
                try unmount()
                repair()
                try mount()
                if (try? Data("probe".utf8).write(to: probe)) != nil {
                    try? FileManager.default.removeItem(at: probe)
                    return
                }
                usleep(500_000)
            }
            Issue.record("the file system did not come back writable after 10 repairs")
        }

        /// `errors=remount-ro`: an error found in the file system turns it read-only.
        func mount() throws {
            let mounted = try ExternalCommand.run(
                "/usr/bin/mount", ["-o", "errors=remount-ro", device, directory.path],
                mergeStandardError: true)
            try #require(mounted.status == 0, "mount: \(mounted.standardOutput)")
        }

        /// e2fsck, as an operator would before mounting again: clears the error the fault left recorded,
        /// which could otherwise turn the file system read-only again at once. Best effort: on a busy
        /// machine e2fsck sometimes keeps answering 8 (an operational error) for a while after the
        /// unmount; the mount is then tried as it is.
        func repair() {
            for _ in 0..<20 {
                let checked = try? ExternalCommand.run(
                    "/usr/sbin/e2fsck", ["-fy", device], mergeStandardError: true)
                if let checked, checked.status <= 1 { return }  // 0: clean, 1: errors corrected
                usleep(250_000)
            }
        }

        func unmount() throws {
            let result = try ExternalCommand.run(
                "/usr/bin/umount", [directory.path], mergeStandardError: true)
            try #require(result.status == 0, "umount: \(result.standardOutput)")
        }

        /// Writes what is in the page cache, as the kernel would have by itself soon: the fault then
        /// hits the download, not the data it already wrote.
        func sync() {
            Glibc.sync()
        }

        /// ext4 reports an error in itself (as on a corrupt block): with `errors=remount-ro` it turns
        /// read-only at once, under open files too.
        func reportError() throws {
            let name = URL(fileURLWithPath: device).lastPathComponent
            try Data("storage fault test".utf8).write(
                to: URL(fileURLWithPath: "/sys/fs/ext4/\(name)/trigger_fs_error"))
        }

        /// `FS_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`), syncing first: from now on every read and write
        /// fails with EIO, as when the file system gives up on a failing disk.
        func shutDown() throws {
            let fd = open(directory.path, O_RDONLY | O_DIRECTORY)
            try #require(fd >= 0)
            defer { close(fd) }
            var flags: UInt32 = 0
            try #require(ioctl(fd, 0x8004_587D, &flags) == 0, "FS_IOC_SHUTDOWN: errno \(errno)")
        }

        func detach() {
            _ = try? ExternalCommand.run("/usr/bin/umount", ["-l", directory.path])
            _ = try? ExternalCommand.run("/usr/sbin/losetup", ["-d", device])
        }
    }

    enum FileSystemFault: String, CaseIterable, Sendable {
        case turnedReadOnly = "the file system is read-only (EROFS)"
        case ioError = "the disk reported an I/O error (EIO)"
    }

    @Test(arguments: FileSystemFault.allCases)
    func aFailingFileSystemStopsTheDownloadAndWhatWasWrittenIsKept(fault: FileSystemFault) throws {
        let swarm = try Swarm()
        defer { swarm.stop() }
        try #require(swarm.peers.count == 2)
        let disk = try LoopFileSystem(
            image: swarm.root.appendingPathComponent("disk.img"),
            directory: swarm.root.appendingPathComponent("disk"), sizeMiB: 32)
        defer { disk.detach() }
        let payload = disk.directory.appendingPathComponent("payload")
        let files = swarm.files.map { payload.appendingPathComponent($0.path) }

        // Pieces whose bytes read back whole, not just allocated: with many O_DIRECT writes in flight,
        // blocks are allocated well before their data lands, and the fault would find nothing written.
        let failed = try Self.runWithFault(
            swarm.arguments(into: disk.directory),
            once: {
                files.filter { Self.allocatedBytes($0.path) >= 4 * Self.pieceBytes }.count >= 2
                    && ((try? swarm.intactPieces(in: payload, excluding: nil)) ?? 0) >= 4
            }
        ) {
            disk.sync()
            switch fault {
            case .turnedReadOnly: try disk.reportError()
            case .ioError: try disk.shutDown()
            }
        }
        try #require(failed.faulted, "the download ended before the fault: \(failed.error)")
        #expect(failed.status == 1, "\(failed.error)")
        #expect(
            failed.error.contains("potluck: storage: cannot ") && failed.error.contains("\"payload/")
                && failed.error.contains(fault.rawValue), "\(failed.error)")

        // The disk comes back (mounted again, as after a repair): the same command goes on from what
        // reached it.
        try disk.comeBack()
        let intact = try swarm.intactPieces(in: payload, excluding: nil)
        #expect(intact > 0)
        let resumed = try runPotluck(swarm.arguments(into: disk.directory))
        #expect(resumed.status == 0, "\(resumed.error)")
        let kept = try #require(KilledDownloadTests.piecesKept(in: resumed.error), "\(resumed.error)")
        #expect(kept >= intact, "\(intact) pieces were on disk, \(kept) kept")
        #expect(Interop.sameContents(swarm.data, payload))
    }

    // MARK: Other torrents

    @Test func aFaultInOneTorrentLeavesTheOtherDownloading() throws {
        let broken = try Swarm(name: "broken")
        defer { broken.stop() }
        let healthy = try Swarm(name: "healthy", sizes: [4 << 20, 4 << 20])
        defer { healthy.stop() }
        try #require(broken.peers.count == 2 && healthy.peers.count == 2 && broken.files.count == 3)
        let data = broken.root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let victim = data.appendingPathComponent("broken/sub/file1.bin")
        let healthyCopy = data.appendingPathComponent("healthy")
        // One engine, each torrent held to 2 MB/s: the healthy one's 8 MiB take about four seconds.
        let arguments =
            [
                "seed", broken.torrent, healthy.torrent, "--data", data.path, "--listen", "127.0.0.1:0",
                "--no-trackers", "--no-dht", "--no-lsd", "--verbose", "--quiet",
                "--max-download-rate-per-torrent", Self.rate,
            ] + (broken.peers + healthy.peers).flatMap { ["--peer", $0] }

        var healthyDoneAtFault = true
        let run = try Self.runWithFault(
            arguments,
            once: { Self.writing(victim, andAnyOf: [data.appendingPathComponent("broken/file0.bin")]) },
            fault: {
                healthyDoneAtFault = Interop.sameContents(healthy.data, healthyCopy)
                try FileManager.default.removeItem(at: victim)
                try FileManager.default.createDirectory(at: victim, withIntermediateDirectories: false)
            },
            stopOnce: { Interop.sameContents(healthy.data, healthyCopy) })
        try #require(run.faulted, "\(run.error)")
        #expect(!healthyDoneAtFault, "the healthy torrent was complete before the fault: nothing was shown")
        // The healthy torrent finished while the process ran, after the other had failed.
        #expect(Interop.sameContents(healthy.data, healthyCopy), "\(run.error)")
        #expect(run.status == 1, "\(run.error)")
        #expect(
            run.error.contains("potluck: broken: storage: cannot write \"broken/sub/file1.bin\"")
                && run.error.contains("it is now a directory"), "\(run.error)")
        #expect(!run.error.contains("healthy: storage"), "\(run.error)")
    }
}
