import CLinux
import Glibc
import Metainfo
import TorrentModel

/// Pieces whose bytes may be on disk though no resume data vouches for them: written after the last
/// resume save by a process that was then killed, or put there by hand. Checking these at start keeps
/// every piece that was verified and written before a kill, however long ago resume data was saved.
///
/// A piece is a candidate when every file it touches (padding aside) exists and is long enough to hold
/// its part, and some of its bytes are data rather than a hole (`SEEK_DATA`): pieces never written in a
/// sparse file cost nothing, so a clean stop, whose resume data vouches for all that was written, is not
/// followed by a long check. File systems that report holes as data only make the check longer.
public enum PresentPieces {
    /// The candidates among the pieces not in `excluded`, in index order. Blocking (one `lseek` per
    /// piece at most): call it when loading, off the data path. Paths are opened as storage opens them,
    /// beneath the download folder without following symbolic links; a file that cannot be opened
    /// holds no candidate.
    public static func find(
        layout: FileLayout, downloadDirectory: String, excluding excluded: PieceSet
    ) -> [PieceIndex] {
        guard let directory = try? BeneathDirectory.open(path: downloadDirectory) else { return [] }
        defer { Glibc.close(directory.fd) }
        // Per file: its descriptor and size once opened, nil when it is missing or unreadable.
        var opened: [Int: (fd: Int32, sizeBytes: Int64)?] = [:]
        defer {
            for case let file? in opened.values { Glibc.close(file.fd) }
        }
        func file(_ index: Int) -> (fd: Int32, sizeBytes: Int64)? {
            if let known = opened[index] { return known }
            var result: (fd: Int32, sizeBytes: Int64)?
            if let fd = try? directory.openFile(layout.files[index].path, flags: O_RDONLY) {
                var status = stat()
                if fstat(fd, &status) == 0 {
                    result = (fd, Int64(status.st_size))
                } else {
                    Glibc.close(fd)
                }
            }
            opened[index] = result
            return result
        }

        var candidates: [PieceIndex] = []
        for index in 0..<layout.geometry.pieceCount {
            let piece = PieceIndex(index)
            // Files come in piece order: those before this piece's first are done with, and closed (a
            // torrent of thousands of files would run out of descriptors, and count the rest missing).
            if let first = layout.spans(of: piece).first?.fileIndex {
                for (done, file) in opened where done < first {
                    if let file { Glibc.close(file.fd) }
                    opened[done] = nil
                }
            }
            guard !excluded.contains(piece) else { continue }
            var complete = true
            var holdsData = false
            for span in layout.spans(of: piece) where !span.isPadding {
                guard let (fd, sizeBytes) = file(span.fileIndex),
                    sizeBytes >= span.fileOffset + Int64(span.length)
                else {
                    complete = false
                    break
                }
                if !holdsData { holdsData = hasData(fd, from: span.fileOffset, length: span.length) }
            }
            if complete && holdsData { candidates.append(piece) }
        }
        return candidates
    }

    /// Whether `[offset, offset + length)` of the file holds data, not only a hole. Where `SEEK_DATA`
    /// is not supported, every range counts as data.
    private static func hasData(_ fd: Int32, from offset: Int64, length: Int) -> Bool {
        let next = lseek(fd, off_t(offset), potluck_seek_data())
        if next < 0 { return errno != ENXIO }
        return Int64(next) < offset + Int64(length)
    }
}
