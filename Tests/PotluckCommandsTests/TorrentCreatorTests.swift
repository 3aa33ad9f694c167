import CLinux
import Foundation
import Glibc
import Hashing
import Metainfo
import Testing

@testable import PotluckCommands

/// `potluck create` hashes pieces in place through file mappings when the data is in the page cache in
/// huge pages and reads them through the ring otherwise; both must give the same torrent.
@Suite(.serialized) struct TorrentCreatorTests {
    /// Two files with awkward sizes, so some v1 pieces span both and some end short; the first spans two
    /// mapping windows, the second is too small to be mapped in huge pages.
    static func makeFolder() throws -> (root: String, files: [[UInt8]]) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-creator-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: root + "/payload", withIntermediateDirectories: true)
        var state = UInt64.random(in: 1...UInt64.max)
        var contents: [[UInt8]] = []
        for (name, size) in [("a.bin", (6 << 20) + 12_345), ("b.bin", 300_001)] {
            let bytes = (0..<size).map { _ in
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            }
            // One large write, so the page cache holds it in large folios where the kernel can.
            try Data(bytes).write(to: URL(fileURLWithPath: root + "/payload/" + name))
            contents.append(bytes)
        }
        return (root, contents)
    }

    /// Writes the files back and drops them from the page cache, so hashing has to read them.
    static func evictFromPageCache(_ files: [TorrentCreator.InputFile]) throws {
        for file in files {
            let fd = open(file.diskPath, O_RDONLY)
            try #require(fd >= 0)
            defer { close(fd) }
            fdatasync(fd)
            try #require(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
        }
    }

    /// Whether this kernel and file system map the page cache of `path` with huge page-table entries
    /// (Linux 6.7 to ask, large folios in the file system), as `FileWindows` requires before it maps.
    static func mapsInHugePages(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY)
        let pagemap = open("/proc/self/pagemap", O_RDONLY)
        defer {
            close(fd)
            close(pagemap)
        }
        guard fd >= 0, pagemap >= 0, let base = mmap(nil, 2 << 20, PROT_READ, MAP_SHARED, fd, 0),
            base != UnsafeMutableRawPointer(bitPattern: -1)
        else { return false }
        defer { munmap(base, 2 << 20) }
        _ = madvise(base, 4096, 22)  // MADV_POPULATE_READ
        return potluck_is_huge_mapped(pagemap, base) == 1
    }

    static func create(
        _ root: String, format: TorrentBuilder.Format, pieceLength: Int, memoryBudgetBytes: Int
    ) throws -> (torrent: [UInt8], builder: TorrentBuilder, mappedBytes: Int64) {
        let (name, files) = try TorrentCreator.inputs(at: root + "/payload") { _ in }
        let builder = TorrentBuilder(
            name: name, files: files.map { TorrentBuilder.File(path: $0.torrentPath, length: $0.length) },
            pieceLength: pieceLength, format: format)
        var mapped: Int64 = 0
        let finished = try TorrentCreator(name: name, files: files, builder: builder).run(
            threads: 2, memoryBudgetBytes: memoryBudgetBytes
        ) { mapped = $0.mappedBytes }
        return (try finished.build(), finished, mapped)
    }

    @Test(arguments: [TorrentBuilder.Format.v1, .v2, .hybrid])
    func mappedAndReadPiecesGiveTheSameTorrent(format: TorrentBuilder.Format) throws {
        let (root, contents) = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let total = Int64(contents.reduce(0) { $0 + $1.count })

        // An 8 MiB budget maps the large file in two windows of 4 MiB.
        let warm = try Self.create(root, format: format, pieceLength: 16 << 10, memoryBudgetBytes: 8 << 20)
        if Self.mapsInHugePages(root + "/payload/a.bin") {
            #expect(warm.mappedBytes > total / 2, "a freshly written large file is mapped")
        }
        #expect(warm.mappedBytes < total, "a small file, and pieces that span files, are read into buffers")

        // One window per file: the choice is made before the ring's reads bring any of it back.
        try Self.evictFromPageCache(try TorrentCreator.inputs(at: root + "/payload") { _ in }.files)
        let cold = try Self.create(root, format: format, pieceLength: 16 << 10, memoryBudgetBytes: 64 << 20)
        #expect(cold.mappedBytes == 0, "files not in the page cache are read through the ring")
        #expect(warm.torrent == cold.torrent)

        if format == .v1 {
            // Against plain SHA-1 over the concatenated payload, cut into pieces.
            let payload = contents.flatMap { $0 }
            let expected = stride(from: 0, to: payload.count, by: 16 << 10).map { start in
                SHA1.hash(Array(payload[start..<min(start + (16 << 10), payload.count)]))
            }
            #expect(warm.builder.pieceHashesV1 == expected)
        }
    }

    /// A file cut short while it is hashed (through a mapping, a read or at the final size check) is a
    /// clear error, and no torrent is written.
    @Test func aFileThatShrinksWhileHashedIsAClearError() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("potluck-shrink-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let payload = root + "/big.bin"
        let fd = open(payload, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        try #require(fd >= 0)
        let block = [UInt8](repeating: 0x5A, count: 1 << 20)
        for _ in 0..<1024 { try #require(write(fd, block, block.count) == block.count) }
        close(fd)

        let torrent = root + "/big.torrent"
        let process = Process()
        process.executableURL = potluckExecutable()
        process.arguments = ["create", "--piece-size", "1M", "-o", torrent, payload]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The first progress line comes once hashing has begun; then the file loses most of its bytes.
        var stderr = Data()
        while !String(decoding: stderr, as: UTF8.self).contains("hashing") {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            stderr += chunk
        }
        #expect(truncate(payload, 1 << 20) == 0)
        stderr += readAll(errors.fileHandleForReading)
        process.waitUntilExit()
        let message = String(decoding: stderr, as: UTF8.self)
        #expect(process.terminationStatus == 1, "\(message)")
        #expect(
            message.contains("shrank while it was being hashed") || message.contains("changed size"),
            "\(message)")
        #expect(access(torrent, F_OK) != 0)
    }
}
