import Buffers
import Glibc
import Hashing
import Metainfo
import Storage
import Testing
import TorrentModel
import URing

@Suite struct RecheckTests {
    /// Stores the torrent's files as plain files (as another client, or an earlier run, left them).
    func lay(_ torrent: TestTorrent, in directory: String) {
        for entry in torrent.metainfo.files where !entry.isPadding {
            var path = directory
            for component in entry.path.dropLast() {
                path += "/" + component
                mkdir(path, 0o755)
            }
            let start = Int(entry.offset)
            writeFile(
                path + "/" + entry.path[entry.path.count - 1],
                Array(torrent.payload[start..<start + Int(entry.length)]))
        }
    }

    func recheck(
        _ torrent: TestTorrent, in directory: String, pieces: [PieceIndex]? = nil
    ) throws -> (verified: PieceSet, events: [RecheckEvent], recheck: Recheck) {
        let reactor = try Reactor()
        let waker = reactor.ring.waker
        let hashPool = try HashPool(threadCount: 2, onResultsReady: { waker.wake() })
        defer { hashPool.shutdown() }
        let pool = BufferPool(slotSizeBytes: torrent.metainfo.pieceLength, slotCount: 3)
        let recheck = try Recheck(
            metainfo: torrent.metainfo, downloadDirectory: directory, ring: reactor.ring, pool: pool,
            hashPool: hashPool, pieces: pieces, maxPiecesInFlight: 3)
        recheck.start(into: &reactor.recheckEvents)
        try reactor.run(recheck: recheck, hashPool: hashPool, pool: pool) { recheck.isFinished }
        #expect(pool.freeCount == pool.slotCount, "every slot comes back")
        #expect(recheck.checkedBytes == recheck.totalBytes)
        guard case .finished(let verified) = reactor.recheckEvents.last else {
            Issue.record("no finished event: \(reactor.recheckEvents)")
            return (PieceSet(pieceCount: 0), reactor.recheckEvents, recheck)
        }
        #expect(verified == recheck.verified)
        return (verified, reactor.recheckEvents, recheck)
    }

    static let formats: [TorrentBuilder.Format] = [.v1, .v2, .hybrid]

    /// Several files, one shorter than a piece, one of several pieces with a short last piece.
    func torrent(_ format: TorrentBuilder.Format) throws -> TestTorrent {
        try TestTorrent(
            files: [
                (["small"], patternBytes(count: 20_000, seed: 50)),
                (["big"], patternBytes(count: 3 * 32 * 1024 + 5_000, seed: 51)),
                (["sub", "tiny"], patternBytes(count: 700, seed: 52)),
            ], pieceLength: 32 * 1024, format: format)
    }

    @Test(arguments: formats)
    func goodDataVerifiesCompletely(format: TorrentBuilder.Format) throws {
        let torrent = try torrent(format)
        let directory = TemporaryDirectory()
        lay(torrent, in: directory.path)
        let (verified, events, _) = try recheck(torrent, in: directory.path)
        #expect(verified.isComplete, "\(events)")
        #expect(
            events.filter { if case .pieceChecked = $0 { true } else { false } }.count
                == torrent.metainfo.pieceCount)
    }

    @Test(arguments: formats)
    func exactlyTheDamagedPiecesFail(format: TorrentBuilder.Format) throws {
        let torrent = try torrent(format)
        let directory = TemporaryDirectory()
        lay(torrent, in: directory.path)
        // One byte in `small` (a file shorter than a piece) and one in the middle of `big`'s second piece.
        // The formats order files differently, so the pieces come from the layout.
        let small = try #require(torrent.metainfo.files.first { $0.path.last == "small" })
        let big = try #require(torrent.metainfo.files.first { $0.path.last == "big" })
        let smallPiece = PieceIndex(Int((small.offset + 10) / Int64(32 * 1024)))
        let damagedPiece = PieceIndex(Int((big.offset + 32 * 1024 + 100) / Int64(32 * 1024)))
        writeFile(
            directory.path + "/t/small", [0xFF ^ torrent.payload[Int(small.offset) + 10]], at: 10,
            truncate: false)
        writeFile(
            directory.path + "/t/big", [0xFF ^ torrent.payload[Int(big.offset) + 32 * 1024 + 100]],
            at: 32 * 1024 + 100,
            truncate: false)
        let (verified, events, _) = try recheck(torrent, in: directory.path)
        let failed = (0..<torrent.metainfo.pieceCount).map { PieceIndex($0) }.filter {
            !verified.contains($0)
        }
        #expect(failed == [smallPiece, damagedPiece].sorted(), "\(events)")
        #expect(verified.count == torrent.metainfo.pieceCount - 2)
        #expect(events.contains(.pieceChecked(damagedPiece, .hashMismatch)))
    }

    @Test func missingFilesLeaveOnlyTheirPiecesUnverified() throws {
        let torrent = try torrent(.v2)
        let directory = TemporaryDirectory()
        lay(torrent, in: directory.path)
        unlink(directory.path + "/t/big")
        let (verified, events, recheck) = try recheck(torrent, in: directory.path)
        let big = try #require(torrent.metainfo.files.firstIndex { $0.path.last == "big" })
        let bigPieces = Set(torrent.layout.pieceRange(ofFile: big).map { PieceIndex($0) })
        for piece in (0..<torrent.metainfo.pieceCount).map({ PieceIndex($0) }) {
            #expect(verified.contains(piece) == !bigPieces.contains(piece), "\(piece)")
        }
        for piece in bigPieces { #expect(events.contains(.pieceChecked(piece, .missing))) }
        #expect(recheck.checkedBytes == torrent.metainfo.totalLength)
    }

    @Test func aChosenSetIsCheckedAlone() throws {
        let torrent = try torrent(.v1)
        let directory = TemporaryDirectory()
        lay(torrent, in: directory.path)
        let chosen = [PieceIndex(1), PieceIndex(3)]
        let (verified, events, recheck) = try recheck(torrent, in: directory.path, pieces: chosen)
        #expect(verified.pieces == chosen)
        #expect(events.count == 3)
        // Piece 3 is the short last piece.
        let geometry = torrent.metainfo.geometry
        #expect(
            recheck.totalBytes
                == Int64(geometry.length(of: PieceIndex(1)) + geometry.length(of: PieceIndex(3))))
        #expect(geometry.length(of: PieceIndex(3)) < geometry.pieceLength)
    }

    @Test func nothingOnDiskVerifiesNothing() throws {
        let torrent = try torrent(.hybrid)
        let directory = TemporaryDirectory()
        let (verified, events, _) = try recheck(torrent, in: directory.path)
        #expect(verified.count == 0)
        #expect(
            events.dropLast().allSatisfy { if case .pieceChecked(_, .missing) = $0 { true } else { false } })
    }
}
