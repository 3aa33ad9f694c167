import Buffers
import Glibc
import Hashing
import Metainfo
import Storage
import Testing
import TorrentModel
import URing

/// Every shape of v2 piece at every piece length from 16 KiB to 4 MiB, checked the two ways Potluck
/// checks pieces: a recheck of files on disk, and a piece buffer as peers fill it, alignment gap and
/// all (issue #19: the last piece of a file never verified, and a file of one block crashed the
/// download). The torrents' hashes come from a naive recursive reference, not from `MerkleTree`.
@Suite struct V2PieceShapeTests {
    /// BEP 52's merkle root by its definition: `leafCount` 16 KiB leaves over `data`, a leaf past the
    /// data being 32 zero bytes and every inner node the SHA-256 of its two children.
    static func referenceRoot(_ data: ArraySlice<UInt8>, leafCount: Int) -> SHA256Digest {
        if leafCount == 1 {
            return data.isEmpty ? SHA256Digest(bytes: [UInt8](repeating: 0, count: 32))! : SHA256.hash(data)
        }
        let half = leafCount / 2
        let split = min(data.count, half * 16384)
        let left = referenceRoot(data.prefix(split), leafCount: half)
        let right = referenceRoot(data.dropFirst(split), leafCount: half)
        return SHA256.hash(left.bytes + right.bytes)
    }

    /// Byte `i` is `(i mod 251 + seed) mod 256`, built a period at a time (megabytes, in debug builds).
    static func content(length: Int, seed: Int) -> [UInt8] {
        let period = (0..<251).map { UInt8(truncatingIfNeeded: $0 + seed) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        while bytes.count < length { bytes += period.prefix(length - bytes.count) }
        return bytes
    }

    /// The reference agrees with Python's hashlib on the shape (a last 32 KiB piece of 17,280
    /// bytes) and on a full 4 MiB piece.
    @Test func referenceMatchesHashlib() {
        #expect(
            Self.referenceRoot(Self.content(length: 17280, seed: 9)[...], leafCount: 2).description
                == "8e935cc0479b8ec5a966e16c737f1e9c9ea22b70d2d56370d66ce12953006faf")
        #expect(
            Self.referenceRoot(Self.content(length: 4 << 20, seed: 9)[...], leafCount: 256).description
                == "5e8c9f2e1db2b4c170b8f118f44480056b346de2b61fa479619e05e5804ca719")
    }

    /// Files of every shape for `pieceLength` (paths under the torrent's folder), an empty one and
    /// nested folders included.
    static func shapes(pieceLength: Int) -> [(path: [String], length: Int)] {
        var shapes: [(path: [String], length: Int)] = [
            (["lastPieceOneLeaf"], 2 * pieceLength + 896),
            (["a", "lastPieceOfBlocks"], pieceLength + max(pieceLength / 2, 16384)),
            (["a", "b", "oneBlock"], 16384),
            (["a", "b", "oneShortBlock"], 1000),
            (["a", "empty"], 0),
            (["exactlyOnePiece"], pieceLength),
        ]
        if pieceLength >= 32768 {
            shapes.append((["a", "lastPieceTwoLeaves"], pieceLength + 17280))
            shapes.append((["b", "shorterThanAPiece"], pieceLength / 2 + 5))
        }
        return shapes
    }

    /// A v2 torrent over `shapes(pieceLength:)` with hashes from the reference, and each file's content.
    static func torrent(pieceLength: Int) throws -> (Metainfo, [[String]: [UInt8]]) {
        var contents: [[String]: [UInt8]] = [:]
        var files: [TorrentBuilder.File] = []
        for (index, shape) in shapes(pieceLength: pieceLength).enumerated() {
            let content = content(length: shape.length, seed: index)
            contents[["shapes"] + shape.path] = content
            var file = TorrentBuilder.File(path: shape.path, length: Int64(shape.length))
            if shape.length > 0 {
                let blocks = (shape.length + 16383) / 16384
                let leaves = 1 << ((blocks - 1).bitWidth - (blocks - 1).leadingZeroBitCount)
                file.piecesRoot = referenceRoot(content[...], leafCount: leaves)
            }
            if shape.length > pieceLength {
                file.pieceLayer = stride(from: 0, to: shape.length, by: pieceLength).map {
                    referenceRoot(
                        content[$0..<min($0 + pieceLength, shape.length)], leafCount: pieceLength / 16384)
                }
            }
            files.append(file)
        }
        let bytes = try TorrentBuilder(name: "shapes", files: files, pieceLength: pieceLength, format: .v2)
            .build()
        return (try Metainfo(bytes: bytes), contents)
    }

    static let pieceLengths = (0...8).map { 16384 << $0 }

    /// Each piece as a download assembles it: the layout's whole piece in a buffer, with junk where a
    /// peer may send anything for the alignment gap, hashed as the session hashes it.
    @Test(arguments: pieceLengths)
    func everyPieceInABufferPassesAndACorruptOneFails(pieceLength: Int) throws {
        let (torrent, contents) = try Self.torrent(pieceLength: pieceLength)
        let buffers = BufferPool(slotSizeBytes: pieceLength, slotCount: 2)
        let hashPool = try HashPool(threadCount: 2)
        defer { hashPool.shutdown() }
        for piece in (0..<torrent.pieceCount).map({ PieceIndex($0) }) {
            let check = try #require(torrent.v2PieceCheck(piece), "\(piece)")
            let file = torrent.files[check.fileIndex]
            let content = try #require(contents[file.path])
            let start = Int(torrent.geometry.offset(of: piece) - file.offset)
            for corrupt in [false, true] {
                let slot = try #require(buffers.lease())
                let memory = buffers.bytes(of: slot)
                let gap = check.dataLength..<torrent.geometry.length(of: piece)
                UnsafeMutableRawBufferPointer(rebasing: memory[gap]).initializeMemory(
                    as: UInt8.self, repeating: 0xA5)
                UnsafeMutableRawBufferPointer(rebasing: memory[..<check.dataLength]).copyBytes(
                    from: content[start..<start + check.dataLength])
                // The file's last byte in this piece: the likeliest to be hashed wrongly.
                if corrupt { memory[check.dataLength - 1] ^= 1 }
                hashPool.submit(
                    slot, length: check.dataLength, in: buffers,
                    kind: .merkleRoot(leafCount: check.leafCount),
                    token: 0)
                var root: SHA256Digest?
                while root == nil {
                    hashPool.drain(into: buffers, wait: true) { result in
                        if case .merkleRoot(let digest) = result.digest { root = digest }
                        buffers.release(result.slot!)
                    }
                }
                #expect((root == check.expectedRoot) == !corrupt, "\(file.path) \(piece) corrupt: \(corrupt)")
            }
        }
        #expect(buffers.freeCount == buffers.slotCount)
    }

    /// The files on disk, as a finished download or another client left them: a recheck verifies every
    /// piece, and a byte changed in a file's short last piece fails that piece alone.
    @Test(arguments: pieceLengths)
    func recheckVerifiesEveryPieceAndExactlyTheDamagedOne(pieceLength: Int) throws {
        let (torrent, contents) = try Self.torrent(pieceLength: pieceLength)
        let directory = TemporaryDirectory()
        for (path, content) in contents {
            var folder = directory.path
            for component in path.dropLast() {
                folder += "/" + component
                mkdir(folder, 0o755)
            }
            writeFile(folder + "/" + path[path.count - 1], content)
        }
        #expect(try Self.recheck(torrent, in: directory.path).isComplete)

        let damaged = try #require(torrent.files.firstIndex { $0.path.last == "lastPieceOneLeaf" })
        let file = torrent.files[damaged]
        let lastPiece = PieceIndex(torrent.layout.pieceRange(ofFile: damaged).upperBound - 1)
        let path = directory.path + "/" + file.path.joined(separator: "/")
        let lastByte = Int(file.length) - 1
        writeFile(path, [~(contents[file.path]?[lastByte] ?? 0)], at: lastByte, truncate: false)
        let verified = try Self.recheck(torrent, in: directory.path)
        #expect(!verified.contains(lastPiece))
        #expect(verified.count == torrent.pieceCount - 1)
    }

    static func recheck(_ torrent: Metainfo, in directory: String) throws -> PieceSet {
        let reactor = try Reactor()
        let waker = reactor.ring.waker
        let hashPool = try HashPool(threadCount: 2, onResultsReady: { waker.wake() })
        defer { hashPool.shutdown() }
        let pool = BufferPool(slotSizeBytes: torrent.pieceLength, slotCount: 3)
        let recheck = try Recheck(
            metainfo: torrent, downloadDirectory: directory, ring: reactor.ring, pool: pool,
            hashPool: hashPool,
            maxPiecesInFlight: 3)
        recheck.start(into: &reactor.recheckEvents)
        try reactor.run(recheck: recheck, hashPool: hashPool, pool: pool) { recheck.isFinished }
        #expect(recheck.checkedBytes == recheck.totalBytes)
        return recheck.verified
    }
}
