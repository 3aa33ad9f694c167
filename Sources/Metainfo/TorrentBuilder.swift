import Bencode
import Hashing
import TorrentModel

/// Builds canonical .torrent bytes from already computed hashes. Pure: the caller reads and hashes the
/// files (in the order and with the padding ``payloadFiles()`` gives) and hands the hashes in.
public struct TorrentBuilder: Sendable {
    /// Which protocol versions the torrent will carry.
    public enum Format: Hashable, Sendable {
        case v1
        case v2
        /// v1 and v2 in one info dictionary, with BEP 47 padding so both see the same piece boundaries.
        case hybrid
    }

    /// One input file.
    public struct File: Hashable, Sendable {
        /// Components relative to the torrent's top folder (`name`). A single-file torrent is one file
        /// whose path is `[name]`.
        public var path: [String]
        /// The file's size in bytes.
        public var length: Int64
        /// BEP 47 attributes; padding is only accepted for v1 (hybrids get theirs from the builder).
        public var attributes: FileAttributes
        /// For symlinks (`l`): the target relative to the torrent root.
        public var symlinkTarget: [String]?
        /// v2: the file's merkle root (``MerkleTree/fileRoot(blockHashes:)``); required for non-empty files.
        public var piecesRoot: SHA256Digest?
        /// v2: the file's piece layer (``MerkleTree/pieceLayer(blockHashes:pieceLength:)``); required for
        /// files longer than one piece.
        public var pieceLayer: [SHA256Digest]

        public init(
            path: [String], length: Int64, attributes: FileAttributes = [], symlinkTarget: [String]? = nil,
            piecesRoot: SHA256Digest? = nil, pieceLayer: [SHA256Digest] = []
        ) {
            self.path = path
            self.length = length
            self.attributes = attributes
            self.symlinkTarget = symlinkTarget
            self.piecesRoot = piecesRoot
            self.pieceLayer = pieceLayer
        }
    }

    /// The torrent's name: the file name of a single-file torrent, the top folder otherwise.
    public var name: String
    /// The files, in any order for v2 and hybrid (they are sorted into file-tree order).
    public var files: [File]
    /// Bytes per piece: a power of two, at least 16 KiB (see ``automaticPieceLength(totalLength:)``).
    public var pieceLength: Int
    /// Which protocol versions to write.
    public var format: Format
    /// v1: SHA-1 of each piece of the payload laid out by ``payloadFiles()`` (padding hashed as zeros).
    public var pieceHashesV1: [SHA1Digest] = []
    /// Tracker tiers (BEP 12).
    public var trackers: [[String]] = []
    /// Web seeds (BEP 19).
    public var webSeeds: [String] = []
    /// BEP 27: written as `private` 1 in the info dictionary.
    public var isPrivate = false
    /// Free-form text for users.
    public var comment: String?
    /// A tag in the info dictionary (it changes the infohash; private trackers use it).
    public var source: String?
    /// The creating program's name and version.
    public var createdBy: String?
    /// Seconds since the Unix epoch.
    public var creationDate: Int64?

    public init(name: String, files: [File], pieceLength: Int, format: Format) {
        self.name = name
        self.files = files
        self.pieceLength = pieceLength
        self.format = format
    }

    /// The smallest piece length of at most 2000 pieces for `totalLength` bytes, clamped to 16 KiB…16 MiB:
    /// fewer pieces mean smaller .torrent files and bitfields, more mean finer-grained sharing.
    public static func automaticPieceLength(totalLength: Int64) -> Int {
        let minimum = 16 * 1024
        let maximum = 16 * 1024 * 1024
        let targetPieceCountMax: Int64 = 2000
        var length = minimum
        while length < maximum && piecesNeeded(totalLength, pieceLength: length) > targetPieceCountMax {
            length *= 2
        }
        return length
    }

    var isSingleFile: Bool { files.count == 1 && files[0].path == [name] }

    /// BEP 52 orders files as a depth-first walk of the file tree, whose keys are sorted as raw bytes.
    static func precedesInTree(_ a: [String], _ b: [String]) -> Bool {
        for (x, y) in zip(a, b) where !x.utf8.elementsEqual(y.utf8) {
            return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
        return a.count < b.count
    }

    /// The files in torrent order with any padding inserted: the payload whose v1 pieces must be hashed.
    /// v2 and hybrid torrents list files in file-tree order; hybrids pad every non-empty file but the last
    /// to a piece boundary with a BEP 47 padding file named `.pad/<length>`.
    public func payloadFiles() throws(MetainfoError) -> [File] {
        let limits = MetainfoLimits()
        _ = try PathValidator.component(Array(name.utf8), isFirst: true, field: "name", path: [])
        guard pieceLength >= MerkleTree.blockLength, pieceLength & (pieceLength - 1) == 0,
            pieceLength <= limits.maxPieceLengthBytes
        else { throw .invalidPieceLength(Int64(pieceLength)) }
        guard !files.isEmpty else { throw .emptyTorrent }
        for file in files {
            try PathValidator.path(file.path, field: "files.path", limits: limits)
            if let target = file.symlinkTarget {
                try PathValidator.path(target, field: "files.symlink path", limits: limits)
            }
            guard file.length >= 0 else { throw .invalidFileLength(path: file.path, length: file.length) }
            if format != .v1 && file.isPaddingInput {
                throw .invalidBuilderInput(
                    "padding files are inserted by the builder for v2 and hybrid torrents")
            }
        }
        try PathValidator.checkConflicts(files.filter { !$0.isPaddingInput }.map(\.path), field: "files.path")
        guard format != .v1 else { return files }
        let ordered = files.sorted { Self.precedesInTree($0.path, $1.path) }
        guard format == .hybrid else { return ordered }
        var payload: [File] = []
        var offset: Int64 = 0
        let lastNonEmpty = ordered.lastIndex { $0.length > 0 }
        for (index, file) in ordered.enumerated() {
            payload.append(file)
            offset = try addLengths(offset, file.length)
            let remainder = offset % Int64(pieceLength)
            if file.length > 0, index != lastNonEmpty, remainder != 0 {
                let gap = Int64(pieceLength) - remainder
                payload.append(File(path: [".pad", String(gap)], length: gap, attributes: .padding))
                offset = try addLengths(offset, gap)
            }
        }
        return payload
    }

    /// The .torrent file's bytes: canonical bencode, accepted by ``Metainfo/init(bytes:limits:)``.
    public func build() throws(MetainfoError) -> [UInt8] {
        let payload = try payloadFiles()
        var total: Int64 = 0
        for file in payload { total = try addLengths(total, file.length) }
        guard total > 0 else { throw .emptyTorrent }

        var info: [BencodeKey: BencodeValue] = [
            "name": .string(name),
            "piece length": .integer(Int64(pieceLength)),
        ]
        if isPrivate { info["private"] = 1 }
        if let source { info["source"] = .string(source) }

        if format != .v2 {
            let expected = Int(piecesNeeded(total, pieceLength: pieceLength))
            guard pieceHashesV1.count == expected else {
                throw .pieceCountMismatch(expected: expected, actual: pieceHashesV1.count)
            }
            info["pieces"] = .bytes(pieceHashesV1.flatMap(\.bytes))
            if isSingleFile {
                info["length"] = .integer(total)
                if let attr = files[0].attributes.attr { info["attr"] = .string(attr) }
            } else {
                info["files"] = .list(payload.map(Self.v1Entry))
            }
        }

        var pieceLayers: [BencodeKey: BencodeValue] = [:]
        if format != .v1 {
            info["meta version"] = 2
            var leaves: [(path: [String], entry: BencodeValue)] = []
            for file in payload where !file.isPaddingInput {
                leaves.append((isSingleFile ? [name] : file.path, try v2Entry(file)))
                if file.length > Int64(pieceLength), let root = file.piecesRoot {
                    pieceLayers[BencodeKey(root.bytes)] = .bytes(file.pieceLayer.flatMap(\.bytes))
                }
            }
            info["file tree"] = Self.tree(leaves[...])
        }

        var top: [BencodeKey: BencodeValue] = ["info": .dictionary(info)]
        let urls = trackers.map { $0.filter { !$0.isEmpty } }.filter { !$0.isEmpty }
        if let first = urls.first?.first { top["announce"] = .string(first) }
        if urls.count > 1 || (urls.first?.count ?? 0) > 1 {
            top["announce-list"] = .list(urls.map { .list($0.map(BencodeValue.string)) })
        }
        if !webSeeds.isEmpty { top["url-list"] = .list(webSeeds.map(BencodeValue.string)) }
        if let comment { top["comment"] = .string(comment) }
        if let createdBy { top["created by"] = .string(createdBy) }
        if let creationDate { top["creation date"] = .integer(creationDate) }
        if format != .v1 { top["piece layers"] = .dictionary(pieceLayers) }
        return BencodeValue.dictionary(top).encoded()
    }

    private static func v1Entry(_ file: File) -> BencodeValue {
        var entry: [BencodeKey: BencodeValue] = [
            "length": .integer(file.length),
            "path": .list(file.path.map(BencodeValue.string)),
        ]
        if let attr = file.attributes.attr { entry["attr"] = .string(attr) }
        if let target = file.symlinkTarget { entry["symlink path"] = .list(target.map(BencodeValue.string)) }
        return .dictionary(entry)
    }

    private func v2Entry(_ file: File) throws(MetainfoError) -> BencodeValue {
        var entry: [BencodeKey: BencodeValue] = ["length": .integer(file.length)]
        if file.length > 0 {
            guard let root = file.piecesRoot else {
                throw .invalidBuilderInput("file \(file.path.joined(separator: "/")) has no pieces root")
            }
            entry["pieces root"] = .bytes(root.bytes)
            if file.length > Int64(pieceLength) {
                let expected = Int(piecesNeeded(file.length, pieceLength: pieceLength))
                guard file.pieceLayer.count == expected else {
                    throw .invalidPieceLayerLength(
                        path: file.path, byteCount: file.pieceLayer.count * SHA256Digest.byteCount,
                        expected: expected * SHA256Digest.byteCount)
                }
                guard MerkleTree.root(pieceLayer: file.pieceLayer, pieceLength: pieceLength) == root else {
                    throw .pieceLayerRootMismatch(path: file.path)
                }
            }
        }
        if let attr = file.attributes.attr { entry["attr"] = .string(attr) }
        if let target = file.symlinkTarget { entry["symlink path"] = .list(target.map(BencodeValue.string)) }
        return .dictionary(["": .dictionary(entry)])
    }

    /// Nests leaves into a BEP 52 file tree by their path components. Paths were checked for conflicts,
    /// so a name is never both a file and a directory.
    private static func tree(_ leaves: ArraySlice<(path: [String], entry: BencodeValue)>) -> BencodeValue {
        // Grouped by raw bytes, not by String equality, which would merge differently normalized names
        // that the v1 file list keeps apart.
        var groups: [BencodeKey: [(path: [String], entry: BencodeValue)]] = [:]
        var entries: [BencodeKey: BencodeValue] = [:]
        for leaf in leaves {
            guard let first = leaf.path.first else { continue }
            if leaf.path.count == 1 {
                entries[BencodeKey(first)] = leaf.entry
            } else {
                groups[BencodeKey(first), default: []].append((Array(leaf.path.dropFirst()), leaf.entry))
            }
        }
        for (component, children) in groups {
            entries[component] = tree(children[...])
        }
        return .dictionary(entries)
    }
}

extension TorrentBuilder.File {
    var isPaddingInput: Bool { attributes.contains(.padding) }
}
