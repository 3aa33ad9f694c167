import Bencode
import Glibc
import Hashing
import Metainfo
import TorrentModel
import URing

/// What the engine remembers between runs so it need not recheck a torrent: which pieces were verified,
/// and each file's size and modification time when that was true.
///
/// The file is bencoded: `info hash`, `piece count`, `verified` (a BEP 3 bitfield), `files` (one
/// dictionary per file of the layout, padding included: `size` and `mtime ns`, or empty when the file
/// did not exist), optionally `file priorities` (one `FilePriority` raw value per file: the selection
/// the user made, kept for the next run), a `version`, and `sha1` over the canonical encoding of the rest, so a torn or
/// damaged file is rejected instead of trusted.
///
/// Invariants: `verified.pieceCount == pieceCount`; `files` has one entry per file of the torrent.
public struct ResumeData: Hashable, Sendable {
    /// The format written by this version; others are rejected (a recheck is always safe).
    public static let formatVersion: Int64 = 1
    /// Larger resume files are refused unread: a torrent's bitfield and file list are far smaller.
    public static let maxFileBytes = 64 * 1024 * 1024

    /// The torrent's wire infohash (`Metainfo.wireInfoHash`).
    public let infoHash: InfoHash
    /// Pieces verified and on stable storage when the data was saved.
    public var verified: PieceSet
    /// Per file of the layout, its status when saved; nil for padding and for files that did not exist.
    public var files: [FileStatus?]
    /// Per file of the layout, the priority chosen when saved; nil when none was ever chosen (all normal).
    public var filePriorities: [FilePriority]?

    /// The number of pieces of the torrent.
    public var pieceCount: Int { verified.pieceCount }

    /// Resume data to save: `files` from ``currentFileStatuses(layout:downloadDirectory:syncingData:)``
    /// taken after a flush or syncing, so the statuses describe the data the bitfield vouches for.
    public init(
        infoHash: InfoHash, verified: PieceSet, files: [FileStatus?], filePriorities: [FilePriority]? = nil
    ) {
        self.infoHash = infoHash
        self.verified = verified
        self.files = files
        self.filePriorities = filePriorities
    }

    // MARK: Trust

    /// The status of each file of `layout` now (nil for padding, missing files, and anything that is
    /// not a regular file reachable without symbolic links). Blocking: call it when saving or loading.
    ///
    /// With `syncingData`, each file's data is synced first (`fdatasync`), and a file whose sync fails
    /// gets nil: pieces whose writes completed before the call may then be vouched for, since a power
    /// loss keeps them (a save between flushes would otherwise vouch for data still in the page cache).
    public static func currentFileStatuses(
        layout: FileLayout, downloadDirectory: String, syncingData: Bool = false
    ) throws(StorageError) -> [FileStatus?] {
        let directory = try BeneathDirectory.open(path: downloadDirectory)
        defer { Glibc.close(directory.fd) }
        return layout.files.map { file in
            guard !file.isPadding else { return nil }
            guard syncingData else { return (try? directory.status(of: file.path)) ?? nil }
            guard let fd = try? directory.openFile(file.path, flags: O_RDONLY) else { return nil }
            defer { Glibc.close(fd) }
            var info = stat()
            guard fdatasync(fd) == 0, fstat(fd, &info) == 0 else { return nil }
            return FileStatus(info)
        }
    }

    /// The verified pieces that can still be trusted given the files' `current` statuses: a piece is
    /// dropped when any file it touches (padding aside) was missing when saved, or now differs in size
    /// or modification time (written to, truncated or replaced since).
    public func trustedPieces(current: [FileStatus?], layout: FileLayout) -> PieceSet {
        var trusted = verified
        guard current.count == layout.files.count, files.count == layout.files.count,
            layout.geometry.pieceCount == pieceCount
        else { return PieceSet(pieceCount: pieceCount) }
        for (index, file) in layout.files.enumerated() where !file.isPadding && file.length > 0 {
            if let recorded = files[index], recorded == current[index] { continue }
            for piece in layout.pieceRange(ofFile: index) { trusted.remove(PieceIndex(piece)) }
        }
        return trusted
    }

    // MARK: Encoding

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var fields = body()
        fields["sha1"] = .bytes(SHA1.hash(BencodeValue.dictionary(fields).encoded()).bytes)
        return BencodeValue.dictionary(fields).encoded()
    }

    private func body() -> [BencodeKey: BencodeValue] {
        let fileEntries: [BencodeValue] = files.map { status in
            guard let status else { return .dictionary([:]) }
            return [
                "size": .integer(status.sizeBytes), "mtime ns": .integer(status.modificationTimeNanoseconds),
            ]
        }
        var fields: [BencodeKey: BencodeValue] = [
            "version": .integer(Self.formatVersion),
            "info hash": .bytes(infoHash.bytes),
            "piece count": .integer(Int64(pieceCount)),
            "verified": .bytes(verified.wireBytes),
            "files": .list(fileEntries),
        ]
        if let filePriorities {
            fields["file priorities"] = .list(filePriorities.map { .integer(Int64($0.rawValue)) })
        }
        return fields
    }

    /// Decodes and checks resume data for the torrent with `infoHash` and `layout`. Anything torn,
    /// damaged, of another version or for another torrent is rejected with the reason.
    public init(
        decoding bytes: [UInt8], infoHash: InfoHash, layout: FileLayout, path: String = "resume data"
    ) throws(StorageError) {
        func invalid(_ detail: String) -> StorageError {
            StorageError(.decode, path: path, reason: .invalidResumeData(detail))
        }
        let value: BencodeValue
        do {
            value = try BencodeValue(decoding: bytes)
        } catch {
            throw invalid("it is not valid bencode (\(error)); the file may be torn")
        }
        guard var fields = value.dictionary else { throw invalid("it is not a dictionary") }
        guard let checksum = fields.removeValue(forKey: "sha1")?.bytes else {
            throw invalid("it has no checksum")
        }
        guard SHA1.hash(BencodeValue.dictionary(fields).encoded()).bytes == checksum else {
            throw invalid("its checksum does not match its contents")
        }
        guard fields["version"]?.integer == Self.formatVersion else {
            throw invalid("it is not format version \(Self.formatVersion)")
        }
        guard let hashBytes = fields["info hash"]?.bytes, let storedHash = InfoHash(hashBytes) else {
            throw invalid("its info hash is missing or malformed")
        }
        guard storedHash == infoHash else { throw invalid("it belongs to another torrent (\(storedHash))") }
        let pieceCount = layout.geometry.pieceCount
        guard fields["piece count"]?.integer == Int64(pieceCount) else {
            throw invalid("its piece count is not the torrent's \(pieceCount)")
        }
        guard let bitfield = fields["verified"]?.bytes,
            let verified = PieceSet(wireBytes: bitfield, pieceCount: pieceCount)
        else { throw invalid("its bitfield does not fit \(pieceCount) pieces") }
        guard let entries = fields["files"]?.list, entries.count == layout.files.count else {
            throw invalid("its file list does not match the torrent's \(layout.files.count) files")
        }
        var files: [FileStatus?] = []
        files.reserveCapacity(entries.count)
        for entry in entries {
            guard let entry = entry.dictionary else { throw invalid("a file entry is not a dictionary") }
            if entry.isEmpty {
                files.append(nil)
                continue
            }
            guard let size = entry["size"]?.integer, size >= 0, let mtime = entry["mtime ns"]?.integer else {
                throw invalid("a file entry lacks its size or modification time")
            }
            files.append(FileStatus(sizeBytes: size, modificationTimeNanoseconds: mtime))
        }
        var filePriorities: [FilePriority]?
        if let entries = fields["file priorities"] {
            guard let list = entries.list, list.count == layout.files.count else {
                throw invalid("its file priorities do not match the torrent's \(layout.files.count) files")
            }
            filePriorities = try list.map { (entry) throws(StorageError) -> FilePriority in
                guard let value = entry.integer,
                    let priority = UInt8(exactly: value).flatMap(FilePriority.init)
                else { throw invalid("a file priority is not one of 0 to 3") }
                return priority
            }
        }
        self.init(infoHash: infoHash, verified: verified, files: files, filePriorities: filePriorities)
    }

    // MARK: Files

    /// Writes the data to `path` atomically (see `SmallFile.writeAtomically`). Blocking.
    public func save(to path: String) throws(StorageError) {
        try SmallFile.writeAtomically(encoded(), to: path)
    }

    /// Reads and checks the resume data at `path` for a torrent (see ``init(decoding:infoHash:layout:path:)``).
    /// Blocking.
    public static func load(
        from path: String, infoHash: InfoHash, layout: FileLayout
    ) throws(StorageError) -> ResumeData {
        guard let bytes = try SmallFile.read(path, maximumBytes: Self.maxFileBytes) else {
            throw StorageError(
                .decode, path: path, reason: .invalidResumeData("it is larger than any resume file"))
        }
        return try ResumeData(decoding: bytes, infoHash: infoHash, layout: layout, path: path)
    }
}
