import Buffers
import Glibc
import Storage
import Testing
import TorrentModel

/// Serving a block straight out of the page cache (`PieceStore.residentBlock`): only whole blocks of
/// one open file whose pages are all cached, and never from a mapping that is gone.
@Suite struct ResidentBlockTests {
    /// The crossing torrent written under `directory`, its files open in `store`.
    private func written(in directory: TemporaryDirectory) throws -> (TestTorrent, Reactor, PieceStore) {
        let torrent = try crossingTorrent()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 4)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        return (torrent, reactor, store)
    }

    /// Drops the file's pages from the page cache (written back first, so that they can go).
    private func evict(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        precondition(fd >= 0, "test could not open \(path)")
        defer { close(fd) }
        fdatasync(fd)
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    private func isMapped(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = UnsafeMutableRawPointer(
            bitPattern: Int(bitPattern: bytes.baseAddress) / page * page)
        var vector: UInt8 = 0
        return mincore(start, 1, &vector) == 0
    }

    @Test func aBlockInThePageCacheComesStraightFromItsFile() throws {
        let directory = TemporaryDirectory()
        let (torrent, _, store) = try written(in: directory)
        _ = readFile(directory.path + "/t/a")  // through the page cache
        let block = BlockRange(piece: PieceIndex(0), offset: 16_384, length: 16_384)
        let resident = try #require(store.residentBlock(block, now: 0))
        #expect(digest(resident.bytes) == digest(torrent.payload[16_384..<32_768]))
        // The last block of a short piece in the last file, which ends mid-page.
        let piece = PieceIndex(torrent.metainfo.pieceCount - 1)
        let length = torrent.metainfo.geometry.length(of: piece)
        _ = readFile(directory.path + "/t/dir/c")
        let last = try #require(
            store.residentBlock(BlockRange(piece: piece, offset: 0, length: UInt32(length)), now: 0))
        let start = Int(torrent.metainfo.geometry.offset(of: piece))
        #expect(digest(last.bytes) == digest(torrent.payload[start..<start + length]))
        resident.mapping.unpin()
        last.mapping.unpin()
    }

    @Test func aBlockAcrossFilesOrOutsideThePieceIsRead() throws {
        let directory = TemporaryDirectory()
        let (_, _, store) = try written(in: directory)
        _ = readFile(directory.path + "/t/a")
        _ = readFile(directory.path + "/t/b")
        // Piece 1 runs from 32,768: this block crosses the end of `a` at 50,000 into `b`.
        #expect(
            store.residentBlock(BlockRange(piece: PieceIndex(1), offset: 16_000, length: 16_384), now: 0)
                == nil)
        #expect(
            store.residentBlock(BlockRange(piece: PieceIndex(0), offset: 32_000, length: 16_384), now: 0)
                == nil)
        #expect(
            store.residentBlock(BlockRange(piece: PieceIndex(99), offset: 0, length: 16_384), now: 0) == nil)
    }

    @Test func pagesNotInThePageCacheAreReadInstead() throws {
        let directory = TemporaryDirectory()
        let (_, _, store) = try written(in: directory)
        evict(directory.path + "/t/a")
        let block = BlockRange(piece: PieceIndex(0), offset: 0, length: 16_384)
        #expect(store.residentBlock(block, now: 0) == nil)
        _ = readFile(directory.path + "/t/a")
        let resident = try #require(store.residentBlock(block, now: 1))
        resident.mapping.unpin()
    }

    @Test func aChunkFoundResidentIsTrustedForHalfASecond() throws {
        let directory = TemporaryDirectory()
        let (_, _, store) = try written(in: directory)
        _ = readFile(directory.path + "/t/a")
        let block = BlockRange(piece: PieceIndex(0), offset: 0, length: 16_384)
        try #require(store.residentBlock(block, now: 0)).mapping.unpin()
        evict(directory.path + "/t/a")
        // Not asked again so soon: `mincore` would cost as much as the copy it saves.
        try #require(store.residentBlock(block, now: 400_000_000)).mapping.unpin()
        #expect(store.residentBlock(block, now: 600_000_000) == nil)
    }

    @Test func aTruncatedFileIsReadInstead() throws {
        let directory = TemporaryDirectory()
        let (_, _, store) = try written(in: directory)
        _ = readFile(directory.path + "/t/a")
        #expect(truncate(directory.path + "/t/a", 1_000) == 0)
        // The pages past the new end left the page cache with it: nothing is sent from them.
        #expect(
            store.residentBlock(BlockRange(piece: PieceIndex(0), offset: 16_384, length: 16_384), now: 0)
                == nil)
    }

    /// The resident size of the mapping that holds `address`, from /proc/self/smaps, in KiB.
    private func residentKiB(ofMappingAt address: UnsafeRawPointer) -> Int? {
        guard let bytes = readFile("/proc/self/smaps") else { return nil }
        let smaps = String(decoding: bytes, as: UTF8.self)
        let target = UInt(bitPattern: address)
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= target && target < bounds[1]
            } else if inside, fields.first == "Rss:", fields.count >= 2 {
                return Int(fields[1])
            }
        }
        return nil
    }

    @Test func pagesASendFaultedInLeaveTheResidentSize() throws {
        let directory = TemporaryDirectory()
        let (torrent, _, store) = try written(in: directory)
        _ = readFile(directory.path + "/t/dir/c")
        let piece = PieceIndex(torrent.metainfo.pieceCount - 2)
        let resident = try #require(
            store.residentBlock(BlockRange(piece: piece, offset: 0, length: 16_384), now: 0))
        // What the kernel's copy does for a send: fault the pages in.
        _ = digest(resident.bytes)
        let base = try #require(resident.bytes.baseAddress)
        #expect((residentKiB(ofMappingAt: base) ?? 0) >= 16)
        store.dropMappedPages()
        #expect(residentKiB(ofMappingAt: base) == 0)
        // Still mapped and pinned: a send in flight faults them back in.
        let start = Int(torrent.metainfo.geometry.offset(of: piece))
        #expect(digest(resident.bytes) == digest(torrent.payload[start..<start + 16_384]))
        resident.mapping.unpin()
    }

    @Test func aClosedFileStaysMappedUntilItsLastBlockIsSent() throws {
        let directory = TemporaryDirectory()
        let (torrent, _, store) = try written(in: directory)
        _ = readFile(directory.path + "/t/a")
        let resident = try #require(
            store.residentBlock(BlockRange(piece: PieceIndex(0), offset: 0, length: 16_384), now: 0))
        store.closeIdleFiles()
        #expect(store.openFileCount == 0)
        // A send may still be copying from it: the bytes stay where they were.
        #expect(isMapped(resident.bytes))
        #expect(digest(resident.bytes) == digest(torrent.payload[0..<16_384]))
        // A closed file offers nothing new until it is opened again.
        #expect(
            store.residentBlock(BlockRange(piece: PieceIndex(0), offset: 16_384, length: 16_384), now: 0)
                == nil)
        resident.mapping.unpin()
        #expect(!isMapped(resident.bytes))
    }
}
