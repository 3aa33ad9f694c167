import Bencode
import Hashing
import TorrentModel

/// A parsed and validated .torrent file (BEP 3, 12, 19, 27, 47 and 52): v1, v2 or hybrid.
///
/// Everything the engine needs is checked here, once, so later layers can trust it: piece hashes match
/// the payload size, v2 piece layers hash up to their roots, the two halves of a hybrid describe the same
/// files on the same piece boundaries, and no file path can leave the download folder.
///
/// Invariants: `files` are contiguous from offset 0 and cover `geometry.totalLength`; for v1 and hybrid
/// torrents `piecesRange` holds exactly `geometry.pieceCount` SHA-1 hashes; at least one infohash is
/// present; every non-empty file of a v2 or hybrid torrent has a `piecesRoot`.
public struct Metainfo: Sendable {
    /// Which BitTorrent protocol versions the torrent supports.
    public enum Version: Hashable, Sendable {
        /// BEP 3 only.
        case v1
        /// BEP 52 only.
        case v2
        /// Both, describing the same content (BEP 52 "Upgrade Path").
        case hybrid
    }

    /// What parsing found, boxed: a torrent's metainfo is held by the engine's record, its session and
    /// the front end's list, and 10,000 torrents held three copies of 280 bytes each inline.
    private let parsed: Parsed

    private final class Parsed: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }

        struct Fields: Sendable {
            let bytes: [UInt8]
            let infoRange: Range<Int>
            let version: Version
            let name: String
            let infoHashV1: InfoHash?
            let infoHashV2: SHA256Digest?
            let layout: FileLayout
            let piecesRange: Range<Int>?
            let pieceLayerRanges: [Int: Range<Int>]
            let hasPieceLayers: Bool
            let trackers: [[String]]
            let webSeeds: [String]
            let isPrivate: Bool
            let comment: String?
            let createdBy: String?
            let creationDate: Int64?
            let source: String?
        }
    }

    /// The whole input (the .torrent file, or just the info dictionary for metadata fetched from peers).
    public var bytes: [UInt8] { parsed.fields.bytes }
    /// Where the info dictionary lies in ``bytes``: the infohashes are computed over exactly this range.
    public var infoRange: Range<Int> { parsed.fields.infoRange }
    /// Whether this is a v1, v2 or hybrid torrent.
    public var version: Version { parsed.fields.version }
    /// The suggested name: the file name of a single-file torrent, the top folder of a multi-file one.
    public var name: String { parsed.fields.name }
    /// SHA-1 of the info dictionary, for v1 and hybrid torrents.
    public var infoHashV1: InfoHash? { parsed.fields.infoHashV1 }
    /// SHA-256 of the info dictionary, for v2 and hybrid torrents.
    public var infoHashV2: SHA256Digest? { parsed.fields.infoHashV2 }
    /// Files and piece arithmetic.
    public var layout: FileLayout { parsed.fields.layout }
    /// Where the concatenated v1 SHA-1 piece hashes lie in ``bytes``.
    var piecesRange: Range<Int>? { parsed.fields.piecesRange }
    /// For files with a v2 piece layer: where the layer's hashes lie in ``bytes``, by file index.
    var pieceLayerRanges: [Int: Range<Int>] { parsed.fields.pieceLayerRanges }
    /// Whether v2 piece layers were present and verified (false for metadata without `piece layers`).
    public var hasPieceLayers: Bool { parsed.fields.hasPieceLayers }
    /// Tracker tiers (BEP 12), each a list of announce URLs; from `announce` alone when there is no
    /// `announce-list`.
    public var trackers: [[String]] { parsed.fields.trackers }
    /// Web seed URLs (BEP 19 `url-list`).
    public var webSeeds: [String] { parsed.fields.webSeeds }
    /// BEP 27: only the torrent's trackers may be used to find peers.
    public var isPrivate: Bool { parsed.fields.isPrivate }
    /// Free-form text from the creator (invalid UTF-8 replaced).
    public var comment: String? { parsed.fields.comment }
    /// The program that made the torrent (invalid UTF-8 replaced).
    public var createdBy: String? { parsed.fields.createdBy }
    /// Seconds since the Unix epoch.
    public var creationDate: Int64? { parsed.fields.creationDate }
    /// The `source` tag private trackers put in the info dictionary.
    public var source: String? { parsed.fields.source }

    /// The info dictionary's exact bytes.
    public var infoBytes: ArraySlice<UInt8> { bytes[infoRange] }
    /// The v2 infohash truncated to 20 bytes, as v2 uses it on the wire and with trackers.
    public var truncatedInfoHashV2: InfoHash? {
        infoHashV2.map(InfoHash.init(truncatingV2:))
    }
    /// The files, padding files included, in payload order. A v2-only torrent has no padding files of
    /// its own; synthetic ones (path `.pad/<length>`) fill the gaps that align its files to pieces, so
    /// the same piece arithmetic serves every format. No v2 hash covers those bytes (see
    /// ``V2PieceCheck``); they are there to be asked for and served as zeros.
    public var files: [FileEntry] { layout.files }
    /// Piece and block arithmetic for the payload.
    public var geometry: PieceGeometry { layout.geometry }
    /// Bytes per piece: a power of two, at least 16 KiB.
    public var pieceLength: Int { geometry.pieceLength }
    /// The number of pieces.
    public var pieceCount: Int { geometry.pieceCount }
    /// The size of the piece address space, padding included.
    public var totalLength: Int64 { geometry.totalLength }

    /// Parses a .torrent file.
    public init(bytes: [UInt8], limits: MetainfoLimits = MetainfoLimits()) throws(MetainfoError) {
        let document: BencodeDocument
        do {
            document = try BencodeDocument(bytes: bytes, limits: limits.bencode)
        } catch {
            throw .bencode(error)
        }
        let root = document.root
        guard root.kind == .dictionary else { throw .wrongType(field: "(root)", expected: .dictionary) }
        let top = Fields(node: root, prefix: "")
        let info = try top.required("info", .dictionary)
        try self.init(bytes: bytes, info: info, top: top, limits: limits)
    }

    /// Parses a bare info dictionary, as fetched from peers for a magnet link (BEP 9). It has no
    /// trackers and no v2 piece layers.
    public init(
        infoDictionary bytes: [UInt8], limits: MetainfoLimits = MetainfoLimits()
    ) throws(MetainfoError) {
        let document: BencodeDocument
        do {
            document = try BencodeDocument(bytes: bytes, limits: limits.bencode)
        } catch {
            throw .bencode(error)
        }
        guard document.root.kind == .dictionary else {
            throw .wrongType(field: "info", expected: .dictionary)
        }
        try self.init(bytes: bytes, info: document.root, top: nil, limits: limits)
    }

    private init(
        bytes: [UInt8], info infoNode: BencodeNode, top: Fields?, limits: MetainfoLimits
    ) throws(MetainfoError) {
        let info = Fields(node: infoNode, prefix: "info.")
        // BEP 52: check the version before anything else, so a newer format is reported as such.
        let metaVersion = try info.optional("meta version", .integer)?.integer
        if let metaVersion, metaVersion != 2 { throw .unsupportedMetaVersion(metaVersion) }
        let hasV2 = metaVersion == 2
        let hasV1 = !hasV2 || infoNode["pieces"] != nil

        let nameNode = try info.required("name", .byteString)
        let name = try PathValidator.component(
            nameNode.byteString ?? [], isFirst: true, field: "info.name", path: [])

        let pieceLengthValue = try info.required("piece length", .integer).integer ?? 0
        guard pieceLengthValue >= Int64(MerkleTree.blockLength),
            pieceLengthValue <= Int64(limits.maxPieceLengthBytes),
            pieceLengthValue & (pieceLengthValue - 1) == 0
        else { throw .invalidPieceLength(pieceLengthValue) }
        let pieceLength = Int(pieceLengthValue)

        var v1: V1Part?
        if hasV1 { v1 = try V1Part(info: info, name: name, pieceLength: pieceLength, limits: limits) }
        var v2: V2Part?
        if hasV2 {
            v2 = try V2Part(info: info, name: name, pieceLength: pieceLength, limits: limits)
        }

        var files: [FileEntry]
        var totalLength: Int64
        // Maps v2 file positions to positions in `files`.
        var v2FileIndices: [Int] = []
        if let v1 {
            files = v1.files
            totalLength = v1.totalLength
            if let v2 {
                v2FileIndices = try Self.checkHybrid(v1: v1, v2: v2, pieceLength: pieceLength)
                for (v2Index, fileIndex) in v2FileIndices.enumerated() {
                    let file = files[fileIndex]
                    files[fileIndex] = FileEntry(
                        path: file.path, length: file.length, offset: file.offset,
                        attributes: file.attributes,
                        symlinkTarget: file.symlinkTarget, piecesRoot: v2.files[v2Index].piecesRoot)
                }
            }
        } else if let v2 {
            (files, v2FileIndices) = v2.entriesWithAlignment(pieceLength: pieceLength)
            totalLength = v2.paddedEnd
        } else {
            preconditionFailure("a torrent has a v1 or a v2 part")
        }
        // A v2 file tree cannot hold two files at one path, nor a file where a folder is (its keys are
        // unique and a file's node has no other key), and a hybrid's v1 list must match it; checking
        // prefixes of deep trees cost minutes of CPU for an 8 MB torrent, on the reactor for a magnet.
        if v2 == nil {
            try PathValidator.checkConflicts(files.filter { !$0.isPadding }.map(\.path), field: "info.files")
        }

        // Bounds every later computation on pieces (bitfields, PieceIndex's UInt32) and keeps offsets far
        // from overflow; a v2 torrent's piece count is not bounded by its size on disk.
        let totalPieces = piecesNeeded(totalLength, pieceLength: pieceLength)
        guard totalPieces <= Int64(limits.maxPieceCount) else {
            throw .tooManyPieces(count: totalPieces, limit: limits.maxPieceCount)
        }
        let geometry = PieceGeometry(totalLength: totalLength, pieceLength: pieceLength)

        // v2 piece layers live outside the info dictionary, so only a full .torrent has them. A hybrid
        // may go without (its pieces are checked by their SHA-1): one fetched by a magnet link's v1
        // infohash has none, and is whole.
        var pieceLayerRanges: [Int: Range<Int>] = [:]
        var hasPieceLayers = false
        if let v2, let top {
            let layers = try top.optional("piece layers", .dictionary)
            if layers != nil || v1 == nil {
                pieceLayerRanges = try Self.verifyPieceLayers(
                    layers, v2: v2, fileIndices: v2FileIndices, pieceLength: pieceLength)
                hasPieceLayers = true
            }
        }

        let trackers: [[String]]
        let webSeeds: [String]
        let comment: String?
        let createdBy: String?
        let creationDate: Int64?
        if let top {
            trackers = try Self.parseTrackers(top)
            webSeeds = try Self.parseWebSeeds(top)
            comment = try top.optional("comment", .byteString)?.byteString.map {
                String(decoding: $0, as: UTF8.self)
            }
            createdBy = try top.optional("created by", .byteString)?.byteString.map {
                String(decoding: $0, as: UTF8.self)
            }
            creationDate = try top.optional("creation date", .integer)?.integer
        } else {
            trackers = []
            webSeeds = []
            comment = nil
            createdBy = nil
            creationDate = nil
        }
        let infoHashV1 = v1 != nil ? InfoHash(v1Digest: SHA1.hash(bytes[infoNode.range])) : nil
        let infoHashV2 = v2 != nil ? SHA256.hash(bytes[infoNode.range]) : nil
        parsed = Parsed(
            Parsed.Fields(
                bytes: bytes, infoRange: infoNode.range,
                version: v1 != nil ? (v2 != nil ? .hybrid : .v1) : .v2, name: name,
                infoHashV1: infoHashV1, infoHashV2: infoHashV2,
                layout: FileLayout(files: files, geometry: geometry), piecesRange: v1?.piecesRange,
                pieceLayerRanges: pieceLayerRanges, hasPieceLayers: hasPieceLayers, trackers: trackers,
                webSeeds: webSeeds, isPrivate: try info.optional("private", .integer)?.integer == 1,
                comment: comment, createdBy: createdBy, creationDate: creationDate,
                source: try info.optional("source", .byteString)?.byteString.map {
                    String(decoding: $0, as: UTF8.self)
                }))
    }

    /// The 20-byte id used in handshakes and tracker requests: the v1 infohash, or the truncated v2
    /// infohash for a v2-only torrent.
    public var wireInfoHash: InfoHash {
        if let infoHashV1 { return infoHashV1 }
        if let truncatedInfoHashV2 { return truncatedInfoHashV2 }
        preconditionFailure("a parsed torrent has at least one infohash")
    }

    /// A hybrid torrent's other 20-byte id, the truncated v2 infohash: peers that joined its v2 swarm
    /// give it in their handshakes (BEP 52), and are the same swarm. Nil for v1-only and v2-only torrents.
    public var hybridV2WireInfoHash: InfoHash? { infoHashV1 == nil ? nil : truncatedInfoHashV2 }

    /// The concatenated v1 SHA-1 piece hashes, 20 bytes per piece, as a slice of ``bytes``.
    public var v1PieceHashBytes: ArraySlice<UInt8>? { piecesRange.map { bytes[$0] } }

    /// The v1 SHA-1 hash of a piece, read in place from ``bytes``; nil for v2-only torrents or a piece out
    /// of range.
    public func pieceHash(_ piece: PieceIndex) -> SHA1Digest? {
        guard let piecesRange, piece.int < geometry.pieceCount else { return nil }
        let start = piecesRange.lowerBound + piece.int * SHA1Digest.byteCount
        return SHA1Digest(bytes[start..<start + SHA1Digest.byteCount])
    }

    /// The verified v2 piece layer of a file longer than one piece; nil otherwise.
    public func pieceLayer(ofFile index: Int) -> [SHA256Digest]? {
        guard let range = pieceLayerRanges[index] else { return nil }
        return stride(from: range.lowerBound, to: range.upperBound, by: SHA256Digest.byteCount).compactMap {
            SHA256Digest(bytes: bytes[$0..<$0 + SHA256Digest.byteCount])
        }
    }

    /// The v2 hash a piece must have, and the file it belongs to.
    ///
    /// For a file longer than one piece this is its piece-layer hash, over a subtree of
    /// `pieceLength / 16 KiB` leaves (``MerkleTree/pieceLayer(blockHashes:pieceLength:)``). For a file of at
    /// most one piece it is the file's `pieces root`, over the file's own blocks padded only to a power of
    /// two (``MerkleTree/fileRoot(blockHashes:)``). Nil for v1 torrents, pieces out of range, or a long
    /// file's pieces when piece layers are not known.
    public func v2PieceHash(_ piece: PieceIndex) -> (hash: SHA256Digest, fileIndex: Int)? {
        guard version != .v1, piece.int < geometry.pieceCount else { return nil }
        let fileIndex = layout.firstFile(endingAfter: geometry.offset(of: piece))
        guard fileIndex < files.count, let root = files[fileIndex].piecesRoot else { return nil }
        let file = files[fileIndex]
        if file.length <= Int64(pieceLength) { return (root, fileIndex) }
        guard let range = pieceLayerRanges[fileIndex] else { return nil }
        let position = piece.int - layout.pieceRange(ofFile: fileIndex).lowerBound
        let start = range.lowerBound + position * SHA256Digest.byteCount
        guard start + SHA256Digest.byteCount <= range.upperBound,
            let hash = SHA256Digest(bytes: bytes[start..<start + SHA256Digest.byteCount])
        else { return nil }
        return (hash, fileIndex)
    }

    /// A magnet link for this torrent (BEP 9, with BEP 52's `btmh` for v2).
    public var magnetLink: MagnetLink {
        MagnetLink(
            infoHashV1: infoHashV1, infoHashV2: infoHashV2, displayName: name,
            trackers: trackers.flatMap { $0 },
            webSeeds: webSeeds)
    }

    // MARK: - Parsing helpers

    private static func parseTrackers(_ top: Fields) throws(MetainfoError) -> [[String]] {
        var tiers: [[String]] = []
        if let list = try top.optional("announce-list", .list)?.list {
            for tierNode in list {
                guard let tierList = tierNode.list else {
                    throw .wrongType(field: "announce-list[]", expected: .list)
                }
                var tier: [String] = []
                for urlNode in tierList {
                    guard let bytes = urlNode.byteString else {
                        throw .wrongType(field: "announce-list[][]", expected: .byteString)
                    }
                    // An unusable URL in one tier should not make the rest of the torrent unusable.
                    if let url = String(validating: bytes, as: UTF8.self), !url.isEmpty { tier.append(url) }
                }
                if !tier.isEmpty { tiers.append(tier) }
            }
        }
        // BEP 12: when announce-list is present, announce is ignored.
        if tiers.isEmpty, let announce = try top.optional("announce", .byteString)?.string, !announce.isEmpty
        {
            tiers = [[announce]]
        }
        return tiers
    }

    private static func parseWebSeeds(_ top: Fields) throws(MetainfoError) -> [String] {
        guard let node = top.node["url-list"] else { return [] }
        // BEP 19 allows a single string or a list of them.
        if let single = node.byteString {
            return String(validating: single, as: UTF8.self).map { $0.isEmpty ? [] : [$0] } ?? []
        }
        guard let list = node.list else { throw .wrongType(field: "url-list", expected: .list) }
        var urls: [String] = []
        for element in list {
            guard let bytes = element.byteString else {
                throw .wrongType(field: "url-list[]", expected: .byteString)
            }
            if let url = String(validating: bytes, as: UTF8.self), !url.isEmpty { urls.append(url) }
        }
        return urls
    }

    /// Checks that the v1 and v2 halves describe the same files at the same piece-aligned offsets, and
    /// returns, for each v2 file, its index in the v1 file list.
    private static func checkHybrid(v1: V1Part, v2: V2Part, pieceLength: Int) throws(MetainfoError) -> [Int] {
        let v1Indices = v1.files.indices.filter { !v1.files[$0].isPadding }
        guard v1Indices.count == v2.files.count else {
            throw .hybridMismatch(.fileCountDiffers(v1: v1Indices.count, v2: v2.files.count))
        }
        for (position, v1Index) in v1Indices.enumerated() {
            let v1File = v1.files[v1Index]
            let v2File = v2.files[position]
            // Compared as bytes: String equality would accept differently normalized names.
            guard
                v1.relativePaths[v1Index].map({ Array($0.utf8) })
                    == v2File.relativePath.map({ Array($0.utf8) })
            else {
                throw .hybridMismatch(.pathDiffers(index: position))
            }
            guard v1File.length == v2File.length else {
                throw .hybridMismatch(.lengthDiffers(index: position))
            }
            if v1File.length > 0 && v1File.offset != v2.alignedOffsets[position] {
                throw .hybridMismatch(.misaligned(index: position))
            }
        }
        let v1Pieces = Int(piecesNeeded(v1.totalLength, pieceLength: pieceLength))
        let v2Pieces = Int(piecesNeeded(v2.alignedEnd, pieceLength: pieceLength))
        guard v1Pieces == v2Pieces else {
            throw .hybridMismatch(.pieceCountDiffers(v1: v1Pieces, v2: v2Pieces))
        }
        return v1Indices
    }

    /// Checks every file longer than one piece against its entry in `piece layers` and returns where each
    /// verified layer lies in the input, by index into the final file list.
    private static func verifyPieceLayers(
        _ layers: BencodeNode?, v2: V2Part, fileIndices: [Int], pieceLength: Int
    ) throws(MetainfoError) -> [Int: Range<Int>] {
        var layersByRoot: [SHA256Digest: BencodeNode] = [:]
        if let entries = layers?.dictionary {
            for entry in entries {
                if let root = SHA256Digest(bytes: entry.key) { layersByRoot[root] = entry.value }
            }
        }
        var ranges: [Int: Range<Int>] = [:]
        for (position, file) in v2.files.enumerated() where file.length > Int64(pieceLength) {
            guard let root = file.piecesRoot else { continue }
            guard layers != nil else { throw .missingField("piece layers") }
            guard let layer = layersByRoot[root] else { throw .missingPieceLayer(path: file.relativePath) }
            guard let hashes = layer.byteString else {
                throw .wrongType(field: "piece layers", expected: .byteString)
            }
            let pieces = piecesNeeded(file.length, pieceLength: pieceLength)
            let expected = Int(pieces) * SHA256Digest.byteCount
            guard hashes.count == expected else {
                throw .invalidPieceLayerLength(
                    path: file.relativePath, byteCount: hashes.count, expected: expected)
            }
            let digests = stride(from: hashes.startIndex, to: hashes.endIndex, by: SHA256Digest.byteCount)
                .compactMap {
                    SHA256Digest(bytes: hashes[$0..<$0 + SHA256Digest.byteCount])
                }
            guard MerkleTree.root(pieceLayer: digests, pieceLength: pieceLength) == root else {
                throw .pieceLayerRootMismatch(path: file.relativePath)
            }
            ranges[fileIndices[position]] = hashes.startIndex..<hashes.endIndex
        }
        return ranges
    }
}

/// Typed access to a dictionary's fields, naming them by their path in errors.
struct Fields {
    let node: BencodeNode
    let prefix: String

    func optional(_ key: String, _ kind: BencodeKind) throws(MetainfoError) -> BencodeNode? {
        guard let value = node[key] else { return nil }
        guard value.kind == kind else { throw .wrongType(field: prefix + key, expected: kind) }
        return value
    }

    func required(_ key: String, _ kind: BencodeKind) throws(MetainfoError) -> BencodeNode {
        guard let value = try optional(key, kind) else { throw .missingField(prefix + key) }
        return value
    }
}

/// Adds two lengths, reporting overflow as a metainfo error.
func addLengths(_ a: Int64, _ b: Int64) throws(MetainfoError) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard !overflow else { throw .totalLengthOverflow }
    return sum
}

/// How many pieces `length` bytes take, without the overflow `(length + pieceLength - 1)` risks near
/// `Int64.max`.
func piecesNeeded(_ length: Int64, pieceLength: Int) -> Int64 {
    length / Int64(pieceLength) + (length % Int64(pieceLength) == 0 ? 0 : 1)
}

/// Rounds `offset` up to a multiple of `pieceLength`.
func alignUp(_ offset: Int64, pieceLength: Int) throws(MetainfoError) -> Int64 {
    let remainder = offset % Int64(pieceLength)
    return remainder == 0 ? offset : try addLengths(offset, Int64(pieceLength) - remainder)
}

/// Reads a list of path components.
func parsePath(
    _ node: BencodeNode, field: String, limits: MetainfoLimits
) throws(MetainfoError) -> [String] {
    guard let list = node.list else { throw .wrongType(field: field, expected: .list) }
    if list.count == 0 { throw .unsafePath(field: field, path: [], reason: .empty) }
    var components: [String] = []
    for element in list {
        guard let bytes = element.byteString else { throw .wrongType(field: field, expected: .byteString) }
        if components.count == limits.maxPathComponents {
            throw .unsafePath(field: field, path: components, reason: .tooManyComponents(count: list.count))
        }
        components.append(
            try PathValidator.component(bytes, isFirst: components.isEmpty, field: field, path: components))
    }
    return components
}

/// The BEP 3 half of a torrent.
struct V1Part {
    /// Files with full paths (`[name, …]` for multi-file torrents) and v1 offsets.
    var files: [FileEntry] = []
    /// Paths as the torrent spells them, without the name prefix of multi-file torrents: `[name]` for a
    /// single file. This is what a hybrid's file tree must match.
    var relativePaths: [[String]] = []
    var totalLength: Int64 = 0
    var piecesRange: Range<Int>

    init(info: Fields, name: String, pieceLength: Int, limits: MetainfoLimits) throws(MetainfoError) {
        if let lengthNode = try info.optional("length", .integer) {
            if info.node["files"] != nil { throw .conflictingFields("info.length", "info.files") }
            let length = lengthNode.integer ?? 0
            guard length >= 0 else { throw .invalidFileLength(path: [name], length: length) }
            let attributes = FileAttributes(attr: try info.optional("attr", .byteString)?.byteString ?? [])
            files = [FileEntry(path: [name], length: length, offset: 0, attributes: attributes)]
            relativePaths = [[name]]
            totalLength = length
        } else if let list = try info.optional("files", .list)?.list {
            guard list.count <= limits.maxFileCount else { throw .tooManyFiles(limit: limits.maxFileCount) }
            for (index, fileNode) in list.enumerated() {
                let field = "info.files[\(index)]"
                guard fileNode.kind == .dictionary else {
                    throw .wrongType(field: field, expected: .dictionary)
                }
                let file = Fields(node: fileNode, prefix: field + ".")
                let attributes = FileAttributes(
                    attr: try file.optional("attr", .byteString)?.byteString ?? [])
                // BEP 47: symlinks may omit their (zero) length and padding files their path.
                let length: Int64
                if attributes.contains(.symlink) {
                    length = try file.optional("length", .integer)?.integer ?? 0
                } else {
                    length = try file.required("length", .integer).integer ?? 0
                }
                let path: [String]
                if let pathNode = file.node["path"] {
                    path = try parsePath(pathNode, field: field + ".path", limits: limits)
                } else if attributes.contains(.padding) {
                    path = [".pad", String(length)]
                } else {
                    throw .missingField(field + ".path")
                }
                guard length >= 0 else { throw .invalidFileLength(path: path, length: length) }
                var target: [String]?
                if attributes.contains(.symlink), let targetNode = file.node["symlink path"] {
                    target = try parsePath(targetNode, field: field + ".symlink path", limits: limits)
                }
                if path.count + 1 > limits.maxPathComponents {
                    throw .unsafePath(
                        field: field + ".path", path: path, reason: .tooManyComponents(count: path.count + 1))
                }
                files.append(
                    FileEntry(
                        path: [name] + path, length: length, offset: totalLength, attributes: attributes,
                        symlinkTarget: target))
                relativePaths.append(path)
                totalLength = try addLengths(totalLength, length)
            }
        } else {
            throw .missingField("info.files")
        }
        guard totalLength > 0 else { throw .emptyTorrent }

        let pieces = try info.required("pieces", .byteString).byteString ?? []
        guard pieces.count % SHA1Digest.byteCount == 0 else {
            throw .invalidPiecesLength(byteCount: pieces.count)
        }
        let expected = piecesNeeded(totalLength, pieceLength: pieceLength)
        let actual = pieces.count / SHA1Digest.byteCount
        guard expected == Int64(actual) else {
            throw .pieceCountMismatch(expected: Int(expected), actual: actual)
        }
        piecesRange = pieces.startIndex..<pieces.endIndex
    }
}

/// The BEP 52 half of a torrent.
struct V2Part {
    struct File {
        /// The path in the file tree.
        var relativePath: [String]
        var length: Int64
        var attributes: FileAttributes
        var symlinkTarget: [String]?
        var piecesRoot: SHA256Digest?
    }

    /// Files in file-tree order.
    var files: [File] = []
    /// Each file's offset in the v2 piece address space, where every non-empty file starts on a piece
    /// boundary.
    var alignedOffsets: [Int64] = []
    /// The end of the last file in that address space.
    var alignedEnd: Int64 = 0
    /// `alignedEnd` rounded up to a piece: libtorrent (2.0.4 and later) pads the last file too, and
    /// asks for the last block of a v2 torrent in full even where the file ends inside it. That gap,
    /// like the others, is served as zeros.
    var paddedEnd: Int64 = 0
    let name: String
    /// A tree holding one file at its top level is ambiguous in BEP 52: a single-file torrent, or a folder
    /// `name` holding one file. It is single-file only when the file is called `name`, which is what
    /// creators write and what a v1 single-file torrent means, so the builder and hybrids agree.
    var isSingleFile: Bool { files.count == 1 && files[0].relativePath == [name] }

    init(info: Fields, name: String, pieceLength: Int, limits: MetainfoLimits) throws(MetainfoError) {
        self.name = name
        let tree = try info.required("file tree", .dictionary)
        try walk(tree, path: [], limits: limits)
        guard !files.isEmpty else { throw .invalidFileTree(path: [], reason: .noFiles) }
        var cursor: Int64 = 0
        for file in files {
            if file.length > 0 {
                let offset = try alignUp(cursor, pieceLength: pieceLength)
                alignedOffsets.append(offset)
                cursor = try addLengths(offset, file.length)
            } else {
                alignedOffsets.append(cursor)
            }
        }
        alignedEnd = cursor
        guard alignedEnd > 0 else { throw .emptyTorrent }
        paddedEnd = try alignUp(alignedEnd, pieceLength: pieceLength)
    }

    /// Depth-first over the tree in key order, which is the v2 file order. Recursion is bounded by
    /// `maxPathComponents`.
    private mutating func walk(
        _ node: BencodeNode, path: [String], limits: MetainfoLimits
    ) throws(MetainfoError) {
        guard let entries = node.dictionary else {
            throw .invalidFileTree(path: path, reason: .notADictionary)
        }
        if let fileNode = node[""] {
            if path.isEmpty { throw .invalidFileTree(path: path, reason: .rootIsFile) }
            guard entries.count == 1, fileNode.kind == .dictionary else {
                throw .invalidFileTree(path: path, reason: .fileHasSiblings)
            }
            try addFile(
                Fields(node: fileNode, prefix: "info.file tree." + path.joined(separator: "/") + "."),
                path: path, limits: limits)
            return
        }
        for entry in entries {
            if path.count == limits.maxPathComponents {
                throw .unsafePath(
                    field: "info.file tree", path: path, reason: .tooManyComponents(count: path.count + 1))
            }
            let component = try PathValidator.component(
                entry.key, isFirst: path.isEmpty, field: "info.file tree", path: path)
            try walk(entry.value, path: path + [component], limits: limits)
        }
    }

    private mutating func addFile(
        _ file: Fields, path: [String], limits: MetainfoLimits
    ) throws(MetainfoError) {
        guard files.count < limits.maxFileCount else { throw .tooManyFiles(limit: limits.maxFileCount) }
        let length = try file.required("length", .integer).integer ?? 0
        guard length >= 0 else { throw .invalidFileLength(path: path, length: length) }
        var root: SHA256Digest?
        if length > 0 {
            guard let rootBytes = file.node["pieces root"]?.byteString,
                let digest = SHA256Digest(bytes: rootBytes)
            else {
                throw .invalidFileTree(path: path, reason: .invalidPiecesRoot)
            }
            root = digest
        }
        let attributes = FileAttributes(attr: try file.optional("attr", .byteString)?.byteString ?? [])
        var target: [String]?
        if attributes.contains(.symlink), let targetNode = file.node["symlink path"] {
            target = try parsePath(targetNode, field: file.prefix + "symlink path", limits: limits)
        }
        files.append(
            File(
                relativePath: path, length: length, attributes: attributes, symlinkTarget: target,
                piecesRoot: root))
    }

    /// The v2 files as entries of one contiguous payload up to `paddedEnd`: full paths, and synthetic
    /// padding files filling the alignment gaps (the last file's included) so that the same piece
    /// arithmetic serves v1, v2 and hybrid torrents. Returns the entries and, for each v2 file, its index
    /// among them.
    func entriesWithAlignment(pieceLength: Int) -> ([FileEntry], [Int]) {
        var entries: [FileEntry] = []
        var indices: [Int] = []
        var cursor: Int64 = 0
        func pad(to offset: Int64) {
            guard offset > cursor else { return }
            let gap = offset - cursor
            entries.append(
                FileEntry(path: [".pad", String(gap)], length: gap, offset: cursor, attributes: .padding))
        }
        for (position, file) in files.enumerated() {
            let offset = alignedOffsets[position]
            pad(to: offset)
            indices.append(entries.count)
            let path = isSingleFile ? file.relativePath : [name] + file.relativePath
            entries.append(
                FileEntry(
                    path: path, length: file.length, offset: offset, attributes: file.attributes,
                    symlinkTarget: file.symlinkTarget, piecesRoot: file.piecesRoot))
            cursor = offset + file.length
        }
        pad(to: paddedEnd)
        return (entries, indices)
    }
}
