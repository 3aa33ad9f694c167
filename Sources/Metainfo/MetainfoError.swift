import Bencode

/// Why a metainfo file (or a torrent to be built) was rejected. Cases carry the offending field, path or
/// value so that a user can be told what is wrong with their file.
public enum MetainfoError: Error, Hashable, Sendable {
    /// What is wrong with a file path.
    public enum PathProblem: Hashable, Sendable {
        /// A path with no components.
        case empty
        /// A component that is the empty string (`a//b`).
        case emptyComponent
        /// A component that is `.`.
        case currentDirectory
        /// A component that is `..`, which would climb out of the download folder.
        case parentDirectory
        /// A component starting with `/`, which would make the path absolute.
        case absolute
        /// A `/` inside a component, which would add directory levels the torrent does not declare.
        case containsSlash
        /// A NUL byte, which would truncate the path at the system call.
        case containsNUL
        /// A component longer than NAME_MAX (255 bytes).
        case componentTooLong(byteCount: Int)
        /// A component that is not valid UTF-8 (Potluck requires UTF-8 names so that paths are
        /// unambiguous).
        case invalidUTF8
        /// More components than ``MetainfoLimits/maxPathComponents``.
        case tooManyComponents(count: Int)
        /// The same path as another file, or a path that runs through another file as if it were a
        /// directory.
        case conflictsWithAnotherFile
    }

    /// What is wrong with a v2 `file tree`.
    public enum FileTreeProblem: Hashable, Sendable {
        /// A node that is not a dictionary.
        case notADictionary
        /// A file entry (the empty key) with sibling keys, or one whose value is not a file.
        case fileHasSiblings
        /// The root of the tree is a file, which BEP 52 forbids.
        case rootIsFile
        /// The tree describes no files.
        case noFiles
        /// A non-empty file without a 32-byte `pieces root`.
        case invalidPiecesRoot
    }

    /// How the v1 and v2 views of a hybrid torrent disagree.
    public enum HybridProblem: Hashable, Sendable {
        /// The two views list a different number of (non-padding) files.
        case fileCountDiffers(v1: Int, v2: Int)
        /// The file at this position has a different path in the two views.
        case pathDiffers(index: Int)
        /// The file at this position has a different length in the two views.
        case lengthDiffers(index: Int)
        /// The file at this position does not start on the piece boundary v2 puts it on (padding files
        /// are missing or wrong).
        case misaligned(index: Int)
        /// The two views have a different number of pieces.
        case pieceCountDiffers(v1: Int, v2: Int)
    }

    /// The input is not valid bencode.
    case bencode(BencodeError)
    /// A required field is absent. Fields are named by their path, e.g. `info.piece length`.
    case missingField(String)
    /// A field has the wrong bencode type.
    case wrongType(field: String, expected: BencodeKind)
    /// Two fields that exclude each other are both present (`length` and `files`).
    case conflictingFields(String, String)
    /// A text field that must be UTF-8 (the name) is not.
    case invalidUTF8(field: String)
    /// `meta version` is not one this implementation understands; BEP 52 says to check it first.
    case unsupportedMetaVersion(Int64)
    /// `piece length` is not a power of two between 16 KiB and ``MetainfoLimits/maxPieceLengthBytes``.
    case invalidPieceLength(Int64)
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    case invalidPiecesLength(byteCount: Int)
    /// The number of v1 piece hashes does not match the total length.
    case pieceCountMismatch(expected: Int, actual: Int)
    /// A file length is negative.
    case invalidFileLength(path: [String], length: Int64)
    /// The file lengths add up to more than 2^63 - 1 bytes.
    case totalLengthOverflow
    /// The torrent describes no data.
    case emptyTorrent
    /// More pieces than ``MetainfoLimits/maxPieceCount``.
    case tooManyPieces(count: Int64, limit: Int)
    /// More files than ``MetainfoLimits/maxFileCount``.
    case tooManyFiles(limit: Int)
    /// A path that could escape the download folder or is otherwise unusable. `path` is the decoded
    /// path (invalid UTF-8 replaced) for display.
    case unsafePath(field: String, path: [String], reason: PathProblem)
    /// A malformed v2 `file tree`.
    case invalidFileTree(path: [String], reason: FileTreeProblem)
    /// A file larger than one piece has no entry in `piece layers`.
    case missingPieceLayer(path: [String])
    /// A piece layer's size is not 32 bytes per piece of its file.
    case invalidPieceLayerLength(path: [String], byteCount: Int, expected: Int)
    /// A piece layer does not hash up to its file's `pieces root`.
    case pieceLayerRootMismatch(path: [String])
    /// The v1 and v2 parts of a hybrid torrent describe different content.
    case hybridMismatch(HybridProblem)
    /// A builder input is inconsistent (e.g. missing hashes); the string says which.
    case invalidBuilderInput(String)
}

/// Limits on what the metainfo parser accepts; a .torrent file is untrusted input.
public struct MetainfoLimits: Hashable, Sendable {
    /// Limits for the bencode layer.
    public var bencode: BencodeLimits
    /// The most files (padding files included).
    public var maxFileCount: Int
    /// The most components in one path.
    public var maxPathComponents: Int
    /// The largest piece length accepted, in bytes.
    public var maxPieceLengthBytes: Int
    /// The most pieces; libtorrent's default limit is 2^21, real torrents stay far below 2^22.
    public var maxPieceCount: Int

    public init(
        bencode: BencodeLimits = BencodeLimits(), maxFileCount: Int = 500_000, maxPathComponents: Int = 64,
        maxPieceLengthBytes: Int = 256 * 1024 * 1024, maxPieceCount: Int = 1 << 22
    ) {
        self.bencode = bencode
        self.maxFileCount = maxFileCount
        self.maxPathComponents = maxPathComponents
        self.maxPieceLengthBytes = maxPieceLengthBytes
        self.maxPieceCount = maxPieceCount
    }
}
