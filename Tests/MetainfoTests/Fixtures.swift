import Bencode
import Hashing
import TorrentModel

@testable import Metainfo

/// SplitMix64, so that generated fixtures are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Small in-memory torrents built the way a creator would: hash real content, hand the digests to the
/// builder.
enum Fixtures {
    static let kib = 1024

    /// Deterministic content that differs per seed.
    static func content(length: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        return (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// A builder for `files` (path relative to the top folder, content) with every hash filled in.
    static func builder(
        name: String, files: [(path: [String], content: [UInt8])], pieceLength: Int,
        format: TorrentBuilder.Format
    ) throws -> TorrentBuilder {
        var contents: [[String]: [UInt8]] = [:]
        var inputs: [TorrentBuilder.File] = []
        for file in files {
            contents[file.path] = file.content
            var input = TorrentBuilder.File(path: file.path, length: Int64(file.content.count))
            if format != .v1 {
                let blocks = MerkleTree.blockHashes(of: file.content)
                input.piecesRoot = MerkleTree.fileRoot(blockHashes: blocks)
                if file.content.count > pieceLength {
                    input.pieceLayer = MerkleTree.pieceLayer(blockHashes: blocks, pieceLength: pieceLength)
                }
            }
            inputs.append(input)
        }
        var builder = TorrentBuilder(name: name, files: inputs, pieceLength: pieceLength, format: format)
        if format != .v1 {
            let payload = try builder.payloadFiles().flatMap { file in
                file.attributes.contains(.padding)
                    ? [UInt8](repeating: 0, count: Int(file.length)) : (contents[file.path] ?? [])
            }
            builder.pieceHashesV1 = stride(from: 0, to: payload.count, by: pieceLength).map {
                SHA1.hash(payload[$0..<min($0 + pieceLength, payload.count)])
            }
        } else {
            let payload = files.flatMap(\.content)
            builder.pieceHashesV1 = stride(from: 0, to: payload.count, by: pieceLength).map {
                SHA1.hash(payload[$0..<min($0 + pieceLength, payload.count)])
            }
        }
        return builder
    }

    /// Decodes a torrent, lets `change` edit its top-level dictionary, and re-encodes it.
    static func mutate(
        _ bytes: [UInt8], _ change: (inout [BencodeKey: BencodeValue]) -> Void
    ) throws -> [UInt8] {
        guard case .dictionary(var top) = try BencodeValue(decoding: bytes) else {
            throw MetainfoError.wrongType(field: "(root)", expected: .dictionary)
        }
        change(&top)
        return BencodeValue.dictionary(top).encoded()
    }

    /// Edits the info dictionary inside a top-level dictionary.
    static func editInfo(
        _ top: inout [BencodeKey: BencodeValue], _ change: (inout [BencodeKey: BencodeValue]) -> Void
    ) {
        guard case .dictionary(var info) = top["info"] else { return }
        change(&info)
        top["info"] = .dictionary(info)
    }

    /// A minimal valid v1 single-file torrent's info dictionary with fake (but well-sized) hashes.
    static func v1Info(length: Int64 = 40_000, pieceLength: Int64 = 16384) -> [BencodeKey: BencodeValue] {
        let pieces = (length + pieceLength - 1) / pieceLength
        return [
            "name": "file.bin",
            "length": .integer(length),
            "piece length": .integer(pieceLength),
            "pieces": .bytes([UInt8](repeating: 0xab, count: Int(pieces) * 20)),
        ]
    }

    /// A v1 multi-file info dictionary with the given paths, each file 1000 bytes.
    static func v1MultiInfo(paths: [BencodeValue]) -> [BencodeKey: BencodeValue] {
        let pieces = (Int64(paths.count) * 1000 + 16383) / 16384
        return [
            "name": "top",
            "piece length": 16384,
            "pieces": .bytes([UInt8](repeating: 0xab, count: Int(pieces) * 20)),
            "files": .list(paths.map { ["length": 1000, "path": $0] }),
        ]
    }

    static func torrent(info: [BencodeKey: BencodeValue], extra: [BencodeKey: BencodeValue] = [:]) -> [UInt8]
    {
        var top = extra
        top["info"] = .dictionary(info)
        return BencodeValue.dictionary(top).encoded()
    }

    static func rejection(_ bytes: [UInt8]) -> MetainfoError? {
        do {
            _ = try Metainfo(bytes: bytes)
            return nil
        } catch {
            return error
        }
    }
}
