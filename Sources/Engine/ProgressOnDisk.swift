import Metainfo
import Storage
import TorrentModel

/// What a torrent's download folder and resume data say before it trades: the pieces to trust, and
/// those to check. Found off the reactor (it reads the resume file and looks at every file), by
/// `find`, which is blocking.
struct ProgressOnDisk: Sendable {
    /// Pieces the resume data vouches for and the files still match.
    var trusted: PieceSet
    /// Pieces to check (nil inside: every piece; nil: nothing to check).
    var piecesToCheck: [PieceIndex]??
    /// Whether the resume file says exactly `trusted` (then there is nothing new to save).
    var resumeSaysTrusted: Bool
    /// What was found, for the torrent's log.
    var report: String
    /// The file priorities the resume data remembers, if any.
    var filePriorities: [FilePriority]? = nil

    static func find(
        layout: FileLayout, infoHash: InfoHash, downloadDirectory: String, resumePath: String
    ) -> ProgressOnDisk {
        let pieceCount = layout.geometry.pieceCount
        let current =
            (try? ResumeData.currentFileStatuses(layout: layout, downloadDirectory: downloadDirectory)) ?? []
        guard let resume = try? ResumeData.load(from: resumePath, infoHash: infoHash, layout: layout) else {
            guard current.contains(where: { ($0?.sizeBytes ?? 0) > 0 }) else {
                return ProgressOnDisk(
                    trusted: PieceSet(pieceCount: pieceCount), piecesToCheck: nil, resumeSaysTrusted: false,
                    report: "nothing on disk yet")
            }
            // Data without (valid) resume data: check it before trusting any of it.
            return ProgressOnDisk(
                trusted: PieceSet(pieceCount: pieceCount), piecesToCheck: .some(nil),
                resumeSaysTrusted: false,
                report: "no valid resume data; checking existing files")
        }
        let trusted = resume.trustedPieces(current: current, layout: layout)
        // Pieces written since the last save (a kill) are on disk but not vouched for: check them.
        let present = PresentPieces.find(
            layout: layout, downloadDirectory: downloadDirectory, excluding: trusted)
        return ProgressOnDisk(
            trusted: trusted, piecesToCheck: present.isEmpty ? nil : .some(present),
            resumeSaysTrusted: trusted.count == resume.verified.count,
            report: "resume data: \(trusted.count) of \(pieceCount) pieces trusted"
                + (present.isEmpty ? "" : "; checking \(present.count) more found on disk"),
            filePriorities: resume.filePriorities)
    }
}
