import Buffers
import Glibc
import Metainfo
import Storage
import Testing
import TorrentModel
import URing

@testable import Storage

/// Files that cross piece boundaries: piece 0 ends inside `a`, piece 1 covers the end of `a`, all of
/// `b` and the start of `dir/c`, an empty file sits in between, and the last piece is short.
func crossingTorrent(format: TorrentBuilder.Format = .v1) throws -> TestTorrent {
    try TestTorrent(
        files: [
            (["a"], patternBytes(count: 50_000, seed: 1)),
            (["b"], patternBytes(count: 9_000, seed: 2)),
            (["empty"], []),
            (["dir", "c"], patternBytes(count: 70_001, seed: 3)),
        ], pieceLength: 32 * 1024, format: format)
}

/// Writes every piece from leased slots and runs the ring until all are reported.
@discardableResult
func writeAll(
    _ torrent: TestTorrent, store: PieceStore, pool: BufferPool, reactor: Reactor,
    pieces: [PieceIndex]? = nil
) throws -> [StorageEvent] {
    let chosen = pieces ?? (0..<torrent.metainfo.pieceCount).map { PieceIndex($0) }
    let before = reactor.storeEvents.count
    for piece in chosen {
        let slot = try #require(pool.lease())
        let bytes = torrent.bytes(of: piece)
        pool.bytes(of: slot).copyBytes(from: bytes)
        store.writePiece(piece, from: slot, in: pool)
    }
    try reactor.runStore(store, events: before + chosen.count)
    let events = Array(reactor.storeEvents[before...])
    for event in events {
        if case .pieceWritten(_, let slot) = event { pool.release(slot) }
    }
    return events
}

@Suite struct PieceStoreTests {
    @Test(arguments: ringOptionSets, [false, true])
    func piecesSpanningFilesRoundTrip(ringOptions: RingOptions, registered: Bool) throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor(options: ringOptions)
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        if registered { try reactor.ring.registerBuffers(pool) }
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(registeredPool: registered ? pool : nil))

        var kinds: Set<OperationKind> = []
        reactor.intercept = { completion in
            if let kind = completion.token.kind { kinds.insert(kind) }
            return completion
        }
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(kinds.contains(registered ? .writeFixed : .write))
        #expect(!kinds.contains(registered ? .write : .writeFixed))
        let written = Set(
            events.compactMap { if case .pieceWritten(let piece, _) = $0 { piece } else { nil } })
        #expect(written.count == torrent.metainfo.pieceCount, "events: \(events)")
        #expect(pool.freeCount == pool.slotCount)

        #expect(fileDigest(directory.path + "/t/a") == digest(patternBytes(count: 50_000, seed: 1)))
        #expect(fileDigest(directory.path + "/t/b") == digest(patternBytes(count: 9_000, seed: 2)))
        #expect(fileDigest(directory.path + "/t/dir/c") == digest(patternBytes(count: 70_001, seed: 3)))
        #expect(!exists(directory.path + "/t/empty"), "no piece covers an empty file")
        try store.createEmptyFiles()
        #expect(readFile(directory.path + "/t/empty") == [])

        // Whole pieces back into slots, the short last one included.
        for pieceNumber in 0..<torrent.metainfo.pieceCount {
            let piece = PieceIndex(pieceNumber)
            let slot = try #require(pool.lease())
            store.readPiece(piece, into: slot, in: pool)
            try reactor.runStore(store, events: reactor.storeEvents.count + 1)
            #expect(reactor.storeEvents.last == .pieceRead(piece, slot))
            #expect(kinds.contains(registered ? .readFixed : .read))
            let length = torrent.metainfo.geometry.length(of: piece)
            #expect(digest(pool.bytes(of: slot)[..<length]) == digest(torrent.bytes(of: piece)))
            pool.release(slot)
        }

        // A block crossing from `a` through `b` into `dir/c`.
        let block = BlockRange(piece: PieceIndex(1), offset: 16_000, length: 16_384)
        var buffer = [UInt8](repeating: 0xEE, count: Int(block.length))
        try buffer.withUnsafeMutableBytes { raw in
            store.readBlock(block, into: raw, token: 77)
            try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        }
        #expect(reactor.storeEvents.last == .blockRead(token: 77, block))
        let start = 32 * 1024 + 16_000
        #expect(digest(buffer) == digest(torrent.payload[start..<start + 16_384]))

        // The same block into a pool slot, as a seeder serves it.
        let blockSlot = try #require(pool.lease())
        store.readBlock(block, into: blockSlot, in: pool, token: 78)
        try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        #expect(reactor.storeEvents.last == .blockRead(token: 78, block))
        #expect(
            digest(pool.bytes(of: blockSlot)[..<16_384]) == digest(torrent.payload[start..<start + 16_384]))
    }

    @Test func paddingFilesAreNeverWrittenAndReadAsZeros() throws {
        // BEP 47: `a` is padded to the piece boundary; the padding file must never reach the disk.
        let torrent = try TestTorrent(
            files: [
                (["a"], patternBytes(count: 20_000, seed: 4)),
                (["b"], patternBytes(count: 40_000, seed: 5)),
            ], pieceLength: 32 * 1024, paddingAfter: [0: 32 * 1024 - 20_000])
        #expect(torrent.metainfo.files.contains { $0.isPadding })
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 4)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(events.allSatisfy { if case .pieceWritten = $0 { true } else { false } }, "\(events)")
        #expect(!exists(directory.path + "/t/.pad"))
        #expect(fileDigest(directory.path + "/t/a") == digest(patternBytes(count: 20_000, seed: 4)))

        // Reading piece 0 back: the padding region comes back as zeros even over a dirty buffer.
        let slot = try #require(pool.lease())
        pool.bytes(of: slot).initializeMemory(as: UInt8.self, repeating: 0xAB)
        store.readPiece(PieceIndex(0), into: slot, in: pool)
        try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        #expect(digest(pool.bytes(of: slot)[..<(32 * 1024)]) == digest(torrent.bytes(of: PieceIndex(0))))
        #expect(pool.bytes(of: slot)[20_000..<(32 * 1024)].allSatisfy { $0 == 0 })
    }

    @Test func hybridAlignmentPaddingIsNotCreated() throws {
        let torrent = try TestTorrent(
            files: [
                (["x"], patternBytes(count: 17_000, seed: 6)), (["y"], patternBytes(count: 5_000, seed: 7)),
            ],
            pieceLength: 16 * 1024, format: .hybrid)
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 4)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(!exists(directory.path + "/t/.pad"))
        #expect(fileDigest(directory.path + "/t/x") == digest(patternBytes(count: 17_000, seed: 6)))
        #expect(fileDigest(directory.path + "/t/y") == digest(patternBytes(count: 5_000, seed: 7)))
    }

    @Test func openDescriptorsStayUnderTheCap() throws {
        // Five files of 10 000 bytes with 16 KiB pieces: most pieces touch two files.
        let files = (0..<5).map {
            (path: ["f\($0)"], content: patternBytes(count: 10_000, seed: UInt64(10 + $0)))
        }
        let torrent = try TestTorrent(files: files, pieceLength: 16 * 1024)
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(maxOpenFiles: 2))
        var peakOpen = 0
        reactor.afterEach = { peakOpen = max(peakOpen, store.openFileCount) }
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(events.count == torrent.metainfo.pieceCount)
        #expect(events.allSatisfy { if case .pieceWritten = $0 { true } else { false } }, "\(events)")
        #expect(peakOpen <= 2 && store.openFileCount <= 2)
        for (index, file) in files.enumerated() {
            #expect(fileDigest(directory.path + "/t/f\(index)") == digest(file.content))
        }
        // Flushing syncs every written file, reopening those the cap closed.
        var syncs = 0
        reactor.intercept = { completion in
            if completion.token.kind == .fdatasync { syncs += 1 }
            return completion
        }
        store.flush()
        try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        #expect(reactor.storeEvents.last == .flushed)
        #expect(syncs == 5)
        #expect(store.openFileCount <= 2)

        // Reads reopen what the cap closed.
        let slot = try #require(pool.lease())
        store.readPiece(PieceIndex(0), into: slot, in: pool)
        store.readPiece(PieceIndex(0), into: slot, in: pool)
        try reactor.runStore(store, events: reactor.storeEvents.count + 2)
        #expect(digest(pool.bytes(of: slot)[..<(16 * 1024)]) == digest(torrent.bytes(of: PieceIndex(0))))
        #expect(store.openFileCount <= 2)
    }

    /// A store at rest gives back every descriptor, the download folder's too, and opens again
    /// what it next needs (thousands of torrents at rest share one process's descriptor limit).
    @Test func idleFilesAndTheFolderAreClosedAndReopenedWhenNeeded() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(store.openFileCount > 0)
        store.closeIdleFiles()
        #expect(!store.holdsDescriptors)

        let slot = try #require(pool.lease())
        store.readPiece(PieceIndex(1), into: slot, in: pool)
        try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        #expect(reactor.storeEvents.last == .pieceRead(PieceIndex(1), slot))
        #expect(
            digest(pool.bytes(of: slot)[..<torrent.bytes(of: PieceIndex(1)).count])
                == digest(torrent.bytes(of: PieceIndex(1))))
        #expect(store.holdsDescriptors)
        // Work in flight keeps its file open.
        store.readPiece(PieceIndex(0), into: slot, in: pool)
        store.closeIdleFiles()
        #expect(store.holdsDescriptors)
        try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        store.closeIdleFiles()
        #expect(!store.holdsDescriptors)
    }

    @Test func workWaitsForOperationSlotsAndRequestsBeyondTheLimitFail() throws {
        let files = (0..<5).map {
            (path: ["f\($0)"], content: patternBytes(count: 10_000, seed: UInt64(60 + $0)))
        }
        let torrent = try TestTorrent(files: files, pieceLength: 16 * 1024)
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(maxOpenFiles: 3, maxOperationsInFlight: 1, maxRequestsInFlight: 3))
        var peakOperations = 0
        reactor.afterEach = { peakOperations = max(peakOperations, store.operationsInFlight) }
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(peakOperations == 1)
        // Four pieces, three requests at once: the fourth is refused and keeps its slot.
        let refused = events.compactMap { event -> PieceIndex? in
            if case .failed(.writePiece(let piece, let slot), let error) = event, error.reason == .overloaded
            {
                pool.release(slot)
                return piece
            }
            return nil
        }
        #expect(refused == [PieceIndex(3)])
        try writeAll(torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(3)])
        for (index, file) in files.enumerated() {
            #expect(fileDigest(directory.path + "/t/f\(index)") == digest(file.content))
        }
    }

    @Test func writesInFlightPerFileAreCapped() throws {
        let content = patternBytes(count: 8 * 512 * 1024, seed: 20)
        let torrent = try TestTorrent(name: "one", files: [(["one"], content)], pieceLength: 512 * 1024)
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        let cap = store.writesInFlightPerFile
        #expect(cap == PieceStore.maxWritesInFlightPerFile, "512 KiB pieces: the plain cap")
        #expect(cap < 8, "the test needs more pieces than the cap")
        var peak = 0
        reactor.afterEach = { peak = max(peak, store.writesInFlight(toFile: 0)) }
        for piece in 0..<8 {
            let slot = try #require(pool.lease())
            pool.bytes(of: slot).copyBytes(from: torrent.bytes(of: PieceIndex(piece)))
            store.writePiece(PieceIndex(piece), from: slot, in: pool)
        }
        // Nothing has completed yet: eight pieces asked for, `cap` on the ring.
        #expect(store.operationsInFlight == cap)
        try reactor.runStore(store, events: 8)
        #expect(peak <= cap)
        #expect(fileDigest(directory.path + "/one") == digest(content))
    }

    /// Small pieces: as many writes in flight as fit in `smallWriteBytesInFlightPerFile`, bounded.
    @Test func smallPiecesGetMoreWritesInFlight() throws {
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        for (pieceLength, expected) in [(16 * 1024, 64), (64 * 1024, 16), (256 * 1024, 4), (4 << 20, 4)] {
            let torrent = try TestTorrent(
                name: "p\(pieceLength)",
                files: [(["p\(pieceLength)"], patternBytes(count: pieceLength, seed: 3))],
                pieceLength: pieceLength)
            let store = try PieceStore(
                layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
            #expect(store.writesInFlightPerFile == expected, "\(pieceLength)-byte pieces")
        }
    }

    @Test func shortWritesAreCompleted() throws {
        // One piece, one write: the first completion is cut to half and the second half of the file
        // overwritten, as if the kernel had stopped there. Only a resubmission repairs it.
        let content = patternBytes(count: 64 * 1024, seed: 21)
        let torrent = try TestTorrent(name: "s", files: [(["s"], content)], pieceLength: 64 * 1024)
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 1)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        var writeCompletions = 0
        reactor.intercept = { completion in
            guard completion.token.kind == .write else { return completion }
            writeCompletions += 1
            guard writeCompletions == 1, completion.result == 64 * 1024 else { return completion }
            writeFile(
                directory.path + "/s", [UInt8](repeating: 0xFF, count: 32 * 1024), at: 32 * 1024,
                truncate: false)
            return Completion(token: completion.token, result: 32 * 1024, flags: completion.flags)
        }
        try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(writeCompletions == 2)
        guard case .pieceWritten(PieceIndex(0), _) = reactor.storeEvents.first else {
            Issue.record("expected piece 0 written, got \(reactor.storeEvents)")
            return
        }
        #expect(fileDigest(directory.path + "/s") == digest(content))
    }

    @Test func readingAFileNeverWrittenFails() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        let block = BlockRange(piece: PieceIndex(0), offset: 0, length: 16_384)
        var buffer = [UInt8](repeating: 0, count: 16_384)
        try buffer.withUnsafeMutableBytes { raw in
            store.readBlock(block, into: raw, token: 5)
            try reactor.runStore(store, events: 1)
        }
        guard case .failed(.readBlock(token: 5, block), let error) = reactor.storeEvents.first else {
            Issue.record("expected a failed read, got \(reactor.storeEvents)")
            return
        }
        #expect(error.errno == .noSuchFile)
        #expect(error.path == "t/a")
        #expect(!exists(directory.path + "/t"), "a read must not create anything")
    }

    @Test func readPastTheEndOfAShortFileFails() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        mkdir(directory.path + "/t", 0o755)
        writeFile(directory.path + "/t/a", Array(torrent.payload[0..<1000]))
        let reactor = try Reactor()
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        var buffer = [UInt8](repeating: 0, count: 4000)
        try buffer.withUnsafeMutableBytes { raw in
            store.readBlock(BlockRange(piece: PieceIndex(0), offset: 0, length: 4000), into: raw, token: 1)
            try reactor.runStore(store, events: 1)
        }
        guard case .failed(_, let error) = reactor.storeEvents.first else {
            Issue.record("expected a failure, got \(reactor.storeEvents)")
            return
        }
        #expect(error.reason == .unexpectedEndOfFile)
    }

    @Test func requestsOutsideTheTorrentFailWithoutTrapping() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: 4096, slotCount: 1)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        var buffer = [UInt8](repeating: 0, count: 100)
        let slot = try #require(pool.lease())
        buffer.withUnsafeMutableBytes { raw in
            store.readBlock(BlockRange(piece: PieceIndex(99), offset: 0, length: 10), into: raw, token: 1)
            store.readBlock(BlockRange(piece: PieceIndex(0), offset: 32_760, length: 10), into: raw, token: 2)
            store.readBlock(BlockRange(piece: PieceIndex(0), offset: 0, length: 200), into: raw, token: 3)
        }
        // The pool's 4 KiB slots cannot hold a 32 KiB piece.
        store.writePiece(PieceIndex(0), from: slot, in: pool)
        try reactor.runStore(store, events: 4)
        let reasons = reactor.storeEvents.compactMap {
            if case .failed(_, let error) = $0 { error.reason } else { nil }
        }
        #expect(
            reasons == [
                .outOfRange, .outOfRange, .bufferTooSmall(requiredBytes: 200, availableBytes: 100),
                .bufferTooSmall(requiredBytes: 32 * 1024, availableBytes: 4096),
            ])
        #expect(
            reactor.storeEvents.last
                == .failed(
                    .writePiece(PieceIndex(0), slot),
                    StorageError(
                        .write, path: "piece 0",
                        reason: .bufferTooSmall(requiredBytes: 32 * 1024, availableBytes: 4096))))
    }

    @Test func flushSyncsWrittenFiles() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring)
        store.flush()
        try reactor.runStore(store, events: 1)
        #expect(reactor.storeEvents == [.flushed])
        try writeAll(
            torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(0), PieceIndex(1)])
        let before = reactor.storeEvents.count
        var syncs = 0
        reactor.intercept = { completion in
            if completion.token.kind == .fdatasync { syncs += 1 }
            return completion
        }
        store.flush()
        try reactor.runStore(store, events: before + 1)
        #expect(reactor.storeEvents.last == .flushed)
        // Pieces 0 and 1 touch `a`, `b` and `dir/c`.
        #expect(syncs == 3)
        store.flush()
        try reactor.runStore(store, events: before + 2)
        #expect(syncs == 3, "nothing was written since the last flush")
    }

    @Test func preallocationReservesTheWholeFile() throws {
        let torrent = try crossingTorrent()
        let directory = TemporaryDirectory()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 2)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(preallocate: true))
        try writeAll(torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(0)])
        var info = stat()
        #expect(stat(directory.path + "/t/a", &info) == 0)
        #expect(info.st_size == 50_000)
        #expect(info.st_blocks * 512 >= 50_000)
    }

    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs to fill needs root"))
    func diskFullIsATypedErrorAndTheSlotComesBack() throws {
        let directory = TemporaryDirectory()
        let mountPoint = directory.subdirectory("tiny")
        guard system("mount -t tmpfs -o size=256k tmpfs '\(mountPoint)'") == 0 else {
            print("skipping the disk-full test: this machine does not allow mounting a tmpfs")
            return
        }
        // Lazily if still busy, so a failing test never leaves a mount behind.
        defer { _ = system("umount '\(mountPoint)' || umount -l '\(mountPoint)'") }
        // In a function of its own so the store closes its files before the unmount.
        try fillDisk(mountedAt: mountPoint)
        try preallocateTooMuch(mountedAt: mountPoint)
    }

    func preallocateTooMuch(mountedAt mountPoint: String) throws {
        // 1 MiB cannot be reserved on a 256 KiB file system: the first write fails at preallocation,
        // before any data is written.
        let content = patternBytes(count: 1024 * 1024, seed: 31)
        let torrent = try TestTorrent(name: "huge", files: [(["huge"], content)], pieceLength: 256 * 1024)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 1)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: mountPoint, ring: reactor.ring,
            options: PieceStore.Options(preallocate: true))
        let events = try writeAll(
            torrent, store: store, pool: pool, reactor: reactor, pieces: [PieceIndex(0)])
        guard case .failed(.writePiece(PieceIndex(0), _), let error) = events.first else {
            Issue.record("preallocation must fail, got \(events)")
            return
        }
        #expect(error.operation == .preallocate)
        #expect(error.errno == .noSpace)
    }

    func fillDisk(mountedAt mountPoint: String) throws {
        let content = patternBytes(count: 512 * 1024, seed: 30)
        let torrent = try TestTorrent(name: "big", files: [(["big"], content)], pieceLength: 128 * 1024)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 4)
        let store = try PieceStore(layout: torrent.layout, downloadDirectory: mountPoint, ring: reactor.ring)
        var slots: [BufferSlot] = []
        for piece in 0..<4 {
            let slot = try #require(pool.lease())
            pool.bytes(of: slot).copyBytes(from: torrent.bytes(of: PieceIndex(piece)))
            store.writePiece(PieceIndex(piece), from: slot, in: pool)
            slots.append(slot)
        }
        try reactor.runStore(store, events: 4)
        let failures = reactor.storeEvents.compactMap { event -> (StorageRequest, StorageError)? in
            if case .failed(let request, let error) = event { (request, error) } else { nil }
        }
        #expect(!failures.isEmpty)
        for (request, error) in failures {
            #expect(error.errno == .noSpace)
            #expect(error.operation == .write)
            #expect(error.path == "big")
            #expect(error.description.contains("disk is full"))
            guard case .writePiece(let piece, let slot) = request else {
                Issue.record("unexpected request \(request)")
                continue
            }
            // The verified piece is still intact in its slot for a later retry.
            #expect(pool.state(of: slot) == .leased)
            #expect(digest(pool.bytes(of: slot)[..<(128 * 1024)]) == digest(torrent.bytes(of: piece)))
        }
    }
}

/// Which pages of a file are in the page cache (`mincore` over a read-only mapping).
func residentPages(_ path: String) -> [Bool] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_size > 0 else { return [] }
    let length = Int(info.st_size)
    guard let mapping = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), mapping != MAP_FAILED else {
        return []
    }
    defer { munmap(mapping, length) }
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    var vector = [UInt8](repeating: 0, count: (length + pageSize - 1) / pageSize)
    guard mincore(mapping, length, &vector) == 0 else { return [] }
    return vector.map { $0 & 1 == 1 }
}

/// Whether files in `directory` can be opened with O_DIRECT (not every file system allows it).
func supportsDirectIO(_ directory: String) -> Bool {
    let path = directory + "/.direct-probe"
    let fd = open(path, O_RDWR | O_CREAT | OpenFlags.direct, 0o600)
    defer { unlink(path) }
    guard fd >= 0 else { return false }
    close(fd)
    return true
}

@Suite struct DirectWriteTests {
    @Test func alignedPiecesSkipThePageCacheAndTheShortLastOneUsesIt() throws {
        let directory = TemporaryDirectory()
        try #require(supportsDirectIO(directory.path), "the scratch folder's file system has no O_DIRECT")
        let pieceLength = 64 * 1024
        let content = patternBytes(count: 3 * pieceLength + 10_000, seed: 9)
        let torrent = try TestTorrent(files: [(["f"], content)], pieceLength: pieceLength)
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: pieceLength, slotCount: 4)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(directWrites: true))
        let events = try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(events.allSatisfy { if case .pieceWritten = $0 { true } else { false } }, "\(events)")

        // Looked at before anything reads the file back (a read would bring it into the cache).
        let path = directory.path + "/t/f"
        let resident = residentPages(path)
        let pagesPerPiece = pieceLength / Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect(resident.count == 3 * pagesPerPiece + 3)
        #expect(!resident[..<(3 * pagesPerPiece)].contains(true), "aligned pieces went around the cache")
        #expect(resident[(3 * pagesPerPiece)...].contains(true), "the short last piece went through it")
        #expect(fileDigest(path) == digest(content))

        // Durable after a flush, like buffered writes.
        store.flush()
        try reactor.runStore(store, events: reactor.storeEvents.count + 1)
        #expect(reactor.storeEvents.last == .flushed)
    }

    /// `O_DIRECT` writes get `directWriteBytesInFlightPerFile` in flight, never fewer than buffered ones.
    @Test func directWritesGetMoreInFlight() throws {
        let directory = TemporaryDirectory()
        try #require(supportsDirectIO(directory.path), "the scratch folder's file system has no O_DIRECT")
        let reactor = try Reactor()
        for (pieceLength, plain, direct) in [
            (16 * 1024, 64, 64), (512 * 1024, 4, 64), (1 << 20, 4, 32), (4 << 20, 4, 8), (64 << 20, 4, 4),
        ] {
            let torrent = try TestTorrent(
                name: "d\(pieceLength)", files: [(["d\(pieceLength)"], patternBytes(count: 1024, seed: 4))],
                pieceLength: pieceLength)
            let store = try PieceStore(
                layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
                options: PieceStore.Options(directWrites: true))
            #expect(store.writesInFlightPerFile == plain, "\(pieceLength)-byte pieces")
            #expect(store.directWritesInFlightPerFile == direct, "\(pieceLength)-byte pieces")
        }

        // Twelve 512 KiB pieces asked for at once: all on the ring (buffered, four would be).
        let pieceLength = 512 * 1024
        let content = patternBytes(count: 12 * pieceLength, seed: 21)
        let torrent = try TestTorrent(name: "many", files: [(["many"], content)], pieceLength: pieceLength)
        let pool = BufferPool(slotSizeBytes: pieceLength, slotCount: 12)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(directWrites: true))
        for piece in 0..<12 {
            let slot = try #require(pool.lease())
            pool.bytes(of: slot).copyBytes(from: torrent.bytes(of: PieceIndex(piece)))
            store.writePiece(PieceIndex(piece), from: slot, in: pool)
        }
        #expect(store.operationsInFlight == 12)
        try reactor.runStore(store, events: 12)
        #expect(fileDigest(directory.path + "/many") == digest(content))
    }

    @Test func filesStartingMidBlockAreWrittenThroughTheCache() throws {
        let directory = TemporaryDirectory()
        try #require(supportsDirectIO(directory.path), "the scratch folder's file system has no O_DIRECT")
        let torrent = try crossingTorrent()
        let reactor = try Reactor()
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 8)
        let store = try PieceStore(
            layout: torrent.layout, downloadDirectory: directory.path, ring: reactor.ring,
            options: PieceStore.Options(directWrites: true))
        try writeAll(torrent, store: store, pool: pool, reactor: reactor)
        #expect(fileDigest(directory.path + "/t/a") == digest(patternBytes(count: 50_000, seed: 1)))
        #expect(fileDigest(directory.path + "/t/b") == digest(patternBytes(count: 9_000, seed: 2)))
        #expect(fileDigest(directory.path + "/t/dir/c") == digest(patternBytes(count: 70_001, seed: 3)))
    }
}
