import Metainfo
import Swarm
import TorrentModel

/// A priority for every file of a torrent (its layout's files by index, padding included, as
/// `potluck info` numbers them), and the piece priorities that follow from them.
///
/// A piece is as wanted as the most wanted file it holds bytes of. A piece can only be verified whole,
/// so one that straddles a wanted and a skipped file is downloaded whole, and the skipped file receives
/// the bytes it shares with it: files are sparse, so a skipped file exists on disk only when such a
/// piece touches it, and holds data only in those straddling bytes (see `PieceStore.setWantedFiles`).
/// Padding files hold nothing and count for nothing.
public struct FilePriorities: Hashable, Sendable {
    /// One per file of the layout.
    public private(set) var values: [FilePriority]

    /// `fileCount` files, all at `priority`.
    public init(fileCount: Int, all priority: FilePriority = .normal) {
        values = Array(repeating: priority, count: fileCount)
    }

    /// The given priorities, one per file of the layout.
    public init(_ values: [FilePriority]) { self.values = values }

    /// What the selection rules of a command line make of the files of `layout`, applied in this order:
    /// with any `only` target, just the files they match are wanted (all are otherwise); the files a
    /// `skip` target matches are not; then each assignment sets the priority of the files its target
    /// matches, later ones overriding earlier ones.
    public init(
        layout: FileLayout, only: [FileTarget] = [], skip: [FileTarget] = [],
        assignments: [(FilePriority, FileTarget)] = []
    ) {
        self.init(fileCount: layout.files.count, all: only.isEmpty ? .normal : .skip)
        for target in only {
            for file in target.files(in: layout) { values[file] = .normal }
        }
        for target in skip {
            for file in target.files(in: layout) { values[file] = .skip }
        }
        for (priority, target) in assignments {
            for file in target.files(in: layout) { values[file] = priority }
        }
    }

    public subscript(file: Int) -> FilePriority {
        get { values[file] }
        set { values[file] = newValue }
    }

    /// The picker's priority for a file's pieces. High files stay below `PiecePriority.highest`, which
    /// is kept for the streaming window (what a player needs next comes before everything).
    static func piecePriority(_ priority: FilePriority) -> PiecePriority {
        switch priority {
        case .skip: .skip
        case .low: .lowest
        case .normal: .normal
        case .high: PiecePriority(PiecePriority.highest.value - 1)
        }
    }

    /// Each piece's priority: the highest of the files it holds bytes of, `.skip` when they are all
    /// skipped. A piece of padding alone is `.normal` (it is zeros; nothing to choose). O(pieces + files).
    public func piecePriorities(in layout: FileLayout) -> [PiecePriority] {
        precondition(values.count == layout.files.count, "one priority per file of the torrent")
        var levels = [UInt8?](repeating: nil, count: layout.geometry.pieceCount)
        for (index, file) in layout.files.enumerated() where !file.isPadding {
            let level = Self.piecePriority(values[index]).value
            for piece in layout.pieceRange(ofFile: index) { levels[piece] = max(levels[piece] ?? 0, level) }
        }
        return levels.map { PiecePriority($0 ?? PiecePriority.normal.value) }
    }

    /// The pieces that hold bytes of a wanted file.
    public func wantedPieces(in layout: FileLayout) -> PieceSet {
        var wanted = PieceSet(pieceCount: layout.geometry.pieceCount)
        for (index, priority) in piecePriorities(in: layout).enumerated() where priority > .skip {
            wanted.insert(PieceIndex(index))
        }
        return wanted
    }

    /// Per file of `layout`, whether it is wanted (padding never is: it is never stored).
    public func wantedFiles(in layout: FileLayout) -> [Bool] {
        layout.files.indices.map { !layout.files[$0].isPadding && values[$0].isWanted }
    }
}
