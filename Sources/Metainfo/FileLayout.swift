import Hashing
import TorrentModel

/// BEP 47 file attributes.
public struct FileAttributes: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `p`: a synthetic file of zeros that aligns the next file to a piece boundary; never written.
    public static let padding = FileAttributes(rawValue: 1 << 0)
    /// `x`: executable.
    public static let executable = FileAttributes(rawValue: 1 << 1)
    /// `h`: hidden.
    public static let hidden = FileAttributes(rawValue: 1 << 2)
    /// `l`: a symbolic link; see ``FileEntry/symlinkTarget``.
    public static let symlink = FileAttributes(rawValue: 1 << 3)

    /// Parses an `attr` string; unknown characters are ignored as BEP 47 requires.
    public init(attr: some Sequence<UInt8>) {
        var attributes: FileAttributes = []
        for byte in attr {
            switch byte {
            case UInt8(ascii: "p"): attributes.insert(.padding)
            case UInt8(ascii: "x"): attributes.insert(.executable)
            case UInt8(ascii: "h"): attributes.insert(.hidden)
            case UInt8(ascii: "l"): attributes.insert(.symlink)
            default: break
            }
        }
        self = attributes
    }

    /// The `attr` string, or nil when there are no attributes.
    public var attr: String? {
        var text = ""
        if contains(.executable) { text += "x" }
        if contains(.hidden) { text += "h" }
        if contains(.symlink) { text += "l" }
        if contains(.padding) { text += "p" }
        return text.isEmpty ? nil : text
    }
}

/// One file of a torrent, placed in the torrent's piece address space.
public struct FileEntry: Hashable, Sendable {
    /// The path relative to the download folder: `[name]` for a single-file torrent, `[name, …]` for a
    /// multi-file one. Every component has been checked: none is empty, `.`, `..`, or contains `/` or NUL.
    public let path: [String]
    /// The file's size in bytes.
    public let length: Int64
    /// Where the file starts in the concatenated payload (the piece address space).
    public let offset: Int64
    /// BEP 47 attributes (`attr`).
    public let attributes: FileAttributes
    /// For symlinks (`l`), the target relative to the torrent root, checked like ``path``.
    public let symlinkTarget: [String]?
    /// The v2 merkle root of a non-empty file in a v2 or hybrid torrent.
    public let piecesRoot: SHA256Digest?

    public init(
        path: [String], length: Int64, offset: Int64, attributes: FileAttributes = [],
        symlinkTarget: [String]? = nil,
        piecesRoot: SHA256Digest? = nil
    ) {
        self.path = path
        self.length = length
        self.offset = offset
        self.attributes = attributes
        self.symlinkTarget = symlinkTarget
        self.piecesRoot = piecesRoot
    }

    /// Whether this is a BEP 47 padding file: its bytes are zeros that are never stored.
    public var isPadding: Bool { attributes.contains(.padding) }
}

/// A contiguous part of one file that a piece (or any byte range of the payload) covers.
public struct FileSpan: Hashable, Sendable {
    /// The index into ``FileLayout/files``.
    public let fileIndex: Int
    /// Where the span starts inside the file.
    public let fileOffset: Int64
    /// The span's length in bytes (never 0).
    public let length: Int
    /// Whether the span lies in a padding file (zeros: not read from or written to disk).
    public let isPadding: Bool
}

/// Maps pieces and byte ranges of the payload onto files.
///
/// Invariants: files are in payload order, each starting where the previous one ends (`files[i].offset
/// == files[i-1].offset + files[i-1].length`, the first at 0), and the last ends at
/// `geometry.totalLength`.
public struct FileLayout: Sendable {
    /// The files in payload order, padding included.
    public let files: [FileEntry]
    /// The piece arithmetic over the whole payload.
    public let geometry: PieceGeometry

    /// - Precondition: `files` are contiguous from offset 0 and add up to `geometry.totalLength`.
    public init(files: [FileEntry], geometry: PieceGeometry) {
        var expected: Int64 = 0
        for file in files {
            precondition(file.offset == expected && file.length >= 0, "files must be contiguous")
            expected += file.length
        }
        precondition(expected == geometry.totalLength, "files must cover the payload")
        self.files = files
        self.geometry = geometry
    }

    /// The same files under other paths, one per file in order (where a front end renamed them on
    /// disk); nil, or a list that does not have one path per file: unchanged. The caller checks the
    /// paths as the metainfo's are checked.
    public func renamed(to paths: [[String]]?) -> FileLayout {
        guard let paths, paths.count == files.count else { return self }
        let renamedFiles = zip(files, paths).map { file, path in
            FileEntry(
                path: path, length: file.length, offset: file.offset, attributes: file.attributes,
                symlinkTarget: file.symlinkTarget, piecesRoot: file.piecesRoot)
        }
        return FileLayout(files: renamedFiles, geometry: geometry)
    }

    /// The index of the first file with bytes at or after `offset`.
    func firstFile(endingAfter offset: Int64) -> Int {
        var low = 0
        var high = files.count
        while low < high {
            let mid = (low + high) / 2
            if files[mid].offset + files[mid].length <= offset {
                low = mid + 1
            } else {
                high = mid
            }
        }
        return low
    }

    /// The file spans that make up `length` bytes of the payload from `offset`, in order, clipped to the
    /// payload. Empty files never appear.
    public func spans(offset: Int64, length: Int) -> [FileSpan] {
        var spans: [FileSpan] = []
        forEachSpan(offset: offset, length: length) { spans.append($0) }
        return spans
    }

    /// Calls `body` with each span ``spans(offset:length:)`` would return, in order, without building
    /// an array: storage walks a block's spans for every request it serves.
    public func forEachSpan(offset: Int64, length: Int, _ body: (FileSpan) throws -> Void) rethrows {
        guard offset >= 0, length > 0, offset < geometry.totalLength else { return }
        let end = min(offset + Int64(length), geometry.totalLength)
        var index = firstFile(endingAfter: offset)
        var position = offset
        while position < end && index < files.count {
            let file = files[index]
            let fileEnd = file.offset + file.length
            if fileEnd > position {
                let spanEnd = min(fileEnd, end)
                try body(
                    FileSpan(
                        fileIndex: index, fileOffset: position - file.offset, length: Int(spanEnd - position),
                        isPadding: file.isPadding))
                position = spanEnd
            }
            index += 1
        }
    }

    /// The file spans a piece covers.
    public func spans(of piece: PieceIndex) -> [FileSpan] {
        guard piece.int < geometry.pieceCount else { return [] }
        return spans(offset: geometry.offset(of: piece), length: geometry.length(of: piece))
    }

    /// The file spans a block covers.
    public func spans(of block: BlockRange) -> [FileSpan] {
        guard block.piece.int < geometry.pieceCount else { return [] }
        return spans(
            offset: geometry.offset(of: block.piece) + Int64(block.offset), length: Int(block.length))
    }

    /// The pieces whose last blocks hold nothing but padding, each with how many blocks come before
    /// those (at least one): all a downloader needs to ask peers for (BEP 47 says to avoid requesting
    /// padding, and a v2 piece's alignment gap is in no hash). Only the piece where a run of padding
    /// starts is listed; a piece made wholly of padding, which well-formed torrents do not have, is
    /// asked for in full.
    public func dataBlockCounts() -> [PieceIndex: Int] {
        var counts: [PieceIndex: Int] = [:]
        let blockLength = Int64(geometry.blockLength)
        var index = 0
        while index < files.count {
            guard files[index].isPadding && files[index].length > 0 else {
                index += 1
                continue
            }
            let paddingStart = files[index].offset
            var paddingEnd = paddingStart
            while index < files.count && (files[index].isPadding || files[index].length == 0) {
                paddingEnd = files[index].offset + files[index].length
                index += 1
            }
            let piece = PieceIndex(Int(paddingStart / Int64(geometry.pieceLength)))
            let pieceStart = geometry.offset(of: piece)
            // Data after the padding in the same piece has to be asked for, and the padding with it.
            guard paddingEnd >= pieceStart + Int64(geometry.length(of: piece)) else { continue }
            let dataBlocks = max(1, Int((paddingStart - pieceStart + blockLength - 1) / blockLength))
            if dataBlocks < geometry.blockCount(of: piece) { counts[piece] = dataBlocks }
        }
        return counts
    }

    /// The pieces that hold any of a file's bytes, as piece numbers; empty for an empty file.
    public func pieceRange(ofFile index: Int) -> Range<Int> {
        let file = files[index]
        guard file.length > 0 else { return 0..<0 }
        let pieceLength = Int64(geometry.pieceLength)
        let first = file.offset / pieceLength
        let last = (file.offset + file.length - 1) / pieceLength
        return Int(first)..<Int(last + 1)
    }
}
