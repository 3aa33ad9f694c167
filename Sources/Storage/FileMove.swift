import Glibc
import URing

/// Moves a torrent's files from one download folder to another, file by file, on an io_uring of its
/// own: it runs on a thread of its own, because a copy across file systems takes as long as the data.
///
/// Each file is renamed when both folders are on one file system. Otherwise it is copied to a
/// `.potluck-part` file beside its new place (only the data extents, so a sparse file stays sparse),
/// synced, given the source's modification time (resume data vouches for files by size and time),
/// renamed into place, and only then removed at the source. So at every moment a file is whole in one
/// place or the other, and the same move run again after a crash finishes it: a file already gone from
/// the source is skipped. Folders the torrent's files leave empty are removed.
///
/// Paths are the torrent's (validated by the metainfo parser, checked again here) and are walked one
/// component at a time without following symbolic links, in both folders.
public final class FileMove {
    /// A file to move besides the torrent's own (such as resume data kept beside them), by full path.
    public struct ExtraFile: Sendable {
        public let from: String
        public let to: String
        public init(from: String, to: String) {
            self.from = from
            self.to = to
        }
    }

    /// Bytes copied at once, and copies in flight, when the folders are on different file systems.
    static let chunkBytes = 1 << 20
    static let chunksInFlight = 4
    /// What a file being copied is called beside its new place until it is whole.
    static let partSuffix = ".potluck-part"
    /// `lseek` whences that Glibc declares only under `_GNU_SOURCE` (Linux's values).
    private static let seekData: Int32 = 3
    private static let seekHole: Int32 = 4

    private let files: [[String]]
    private let source: String
    private let target: String
    private let extraFiles: [ExtraFile]
    private var ring: Ring?
    /// The folders synced this run: the descriptor of the folder moved to (a rollback moves the other
    /// way), then the torrent path beneath it, or `..` for the folder above.
    private var syncedFolders: Set<[String]> = []
    private let buffer: UnsafeMutableRawBufferPointer

    public init(files: [[String]], from source: String, to target: String, extraFiles: [ExtraFile] = []) {
        self.files = files
        self.source = source
        self.target = target
        self.extraFiles = extraFiles
        buffer = .allocate(byteCount: Self.chunkBytes * Self.chunksInFlight, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// True after a failed `run` that could not move every moved file back: the torrent's files are
    /// then split between the two folders, and the move's journal must stay to finish it later.
    public private(set) var leftFilesSplit = false
    /// Extra files (`extraFiles`) that could not follow the others and were removed.
    public private(set) var extraFilesDropped: [String] = []

    /// Moves every file. On a failure the files already moved are moved back (as far as they can be:
    /// `leftFilesSplit` says) and the first error is thrown: the torrent is then whole where it was.
    public func run() throws(StorageError) {
        try openRing()
        defer { ring = nil }
        let sourceDirectory = try BeneathDirectory.open(path: source)
        defer { Glibc.close(sourceDirectory.fd) }
        try makeDirectory(target)
        let targetDirectory = try BeneathDirectory.open(path: target)
        defer { Glibc.close(targetDirectory.fd) }

        var moved: [[String]] = []
        for path in files {
            do {
                if try move(path, from: sourceDirectory, to: targetDirectory) {
                    moved.append(path)
                } else if Self.exists(path, in: targetDirectory) {
                    // Moved by the run a crash cut short (this one finishes it): on a failure it goes
                    // back with the others, or the torrent would be split between the folders.
                    moved.append(path)
                }
            } catch {
                for path in moved.reversed() {
                    do {
                        _ = try move(path, from: targetDirectory, to: sourceDirectory)
                    } catch {
                        leftFilesSplit = true
                    }
                }
                throw error
            }
        }
        // Every file is in the target now: an extra file (the resume data) that cannot follow is
        // removed instead of failing the move, and the target's files are checked at the next start.
        for extra in extraFiles {
            do {
                try moveExtra(extra)
            } catch {
                unlink(extra.from)
                extraFilesDropped.append(extra.from)
            }
        }
        removeEmptiedFolders(in: sourceDirectory)
    }

    /// Whether a regular file is at `path` beneath `directory`.
    private static func exists(_ path: [String], in directory: BeneathDirectory) -> Bool {
        guard let parent = try? directory.openParent(of: path, create: false) else { return false }
        defer { if parent != directory.fd { Glibc.close(parent) } }
        var info = stat()
        return fstatat(parent, path[path.count - 1], &info, AT_SYMLINK_NOFOLLOW) == 0
            && info.st_mode & S_IFMT == S_IFREG
    }

    /// Renames the file or folder at `path` beneath the source folder to `name`, where it is
    /// (torrent-rename-path): one rename, never over anything already at the new name. False when
    /// nothing is at `path` (not downloaded yet, or renamed by an earlier run cut short by a crash).
    public func rename(_ path: [String], to name: String) throws(StorageError) -> Bool {
        let display = BeneathDirectory.display(path)
        guard BeneathDirectory.isSafeComponent(name) else {
            throw StorageError(.rename, path: display, reason: .unsafePath)
        }
        try openRing()
        defer { ring = nil }
        let directory: BeneathDirectory
        do {
            directory = try BeneathDirectory.open(path: source)
        } catch {
            if error.errno == .noSuchFile { return false }
            throw error
        }
        defer { Glibc.close(directory.fd) }
        let parent: Int32
        do {
            parent = try directory.openParent(of: path, create: false)
        } catch {
            if error.errno == .noSuchFile { return false }
            throw error
        }
        defer { if parent != directory.fd { Glibc.close(parent) } }
        var info = stat()
        guard fstatat(parent, path[path.count - 1], &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            let errno = Errno(rawValue: Glibc.errno)
            if errno == .noSuchFile { return false }
            throw StorageError(.stat, path: display, errno: errno)
        }
        guard info.st_mode & S_IFMT != S_IFLNK else {
            throw StorageError(.rename, path: display, reason: .symlinkRefused)
        }
        let renamed = perform(
            .renameat(
                fromDirectory: parent, from: path[path.count - 1], toDirectory: parent, to: name,
                flags: Self.renameNoReplace))
        guard renamed >= 0 else {
            throw StorageError(.rename, path: display, errno: Errno(rawValue: -renamed))
        }
        return true
    }

    /// `RENAME_NOREPLACE` (Linux's value; Glibc declares it only under `_GNU_SOURCE`).
    private static let renameNoReplace: UInt32 = 1

    private func openRing() throws(StorageError) {
        do {
            ring = try Ring(options: RingOptions(entries: 16))
        } catch {
            throw StorageError(.move, path: target, errno: error.errno)
        }
    }

    // MARK: One file

    /// Moves the file at `path` if it is in `from`; false when it is not (never created, or already
    /// moved by an earlier run).
    private func move(
        _ path: [String], from: BeneathDirectory, to: BeneathDirectory
    ) throws(StorageError)
        -> Bool
    {
        let display = BeneathDirectory.display(path)
        let name = path[path.count - 1]
        let sourceParent: Int32
        do {
            sourceParent = try from.openParent(of: path, create: false)
        } catch {
            if error.errno == .noSuchFile { return false }
            throw error
        }
        defer { if sourceParent != from.fd { Glibc.close(sourceParent) } }
        var info = stat()
        guard fstatat(sourceParent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            let errno = Errno(rawValue: Glibc.errno)
            if errno == .noSuchFile { return false }
            throw StorageError(.stat, path: display, errno: errno)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            let reason: StorageError.Reason =
                info.st_mode & S_IFMT == S_IFLNK ? .symlinkRefused : .notARegularFile
            throw StorageError(.stat, path: display, reason: reason)
        }
        let targetParent = try to.openParent(of: path, create: true)
        defer { if targetParent != to.fd { Glibc.close(targetParent) } }
        // A copy cut short by a crash: this run starts over.
        _ = perform(.unlinkat(directory: targetParent, path: name + Self.partSuffix, flags: 0))

        var existing = stat()
        if fstatat(targetParent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 {
            // Only a copy across file systems leaves a file in both places: an earlier run cut short
            // between the copy's rename and the source's removal. Anything else there is someone
            // else's, and is never replaced.
            guard Self.isCopy(existing, of: info) else {
                throw StorageError(.move, path: display, reason: .destinationOccupied)
            }
            // As after a copy of this run: the copy durable, its name too, before the source goes.
            try syncFile(name, display: display, in: targetParent)
            try syncFolders(of: path, in: to)
            try removeSource(name, display: display, in: sourceParent)
            return true
        }
        let renamed = perform(
            .renameat(
                fromDirectory: sourceParent, from: name, toDirectory: targetParent, to: name,
                flags: Self.renameNoReplace))
        if renamed >= 0 { return true }
        switch Errno(rawValue: -renamed) {
        case Errno(rawValue: EXDEV): break
        case Errno(rawValue: EEXIST): throw StorageError(.move, path: display, reason: .destinationOccupied)
        default: throw StorageError(.move, path: display, errno: Errno(rawValue: -renamed))
        }
        try copy(name, display: display, from: sourceParent, to: targetParent, info: info)
        // The copy's name must be on disk before the source goes: a power loss could keep the
        // removal and lose the rename.
        try syncFolders(of: path, in: to)
        try removeSource(name, display: display, in: sourceParent)
        return true
    }

    /// Whether `existing` is what `copy` makes of `source`: a regular file on another file system, of
    /// the same size and modification time. (Two mounts of one file system, which a rename cannot
    /// cross either, share a device: such a copy stops the move as `destinationOccupied`, and the
    /// files already moved go back.)
    private static func isCopy(_ existing: stat, of source: stat) -> Bool {
        existing.st_mode & S_IFMT == S_IFREG && existing.st_dev != source.st_dev
            && existing.st_size == source.st_size && existing.st_mtim.tv_sec == source.st_mtim.tv_sec
            && existing.st_mtim.tv_nsec == source.st_mtim.tv_nsec
    }

    private func syncFile(_ name: String, display: String, in parent: Int32) throws(StorageError) {
        let fd = openat(parent, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw StorageError(.open, path: display, errno: Errno(rawValue: Glibc.errno)) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else {
            throw StorageError(.sync, path: display, errno: Errno(rawValue: Glibc.errno))
        }
    }

    private func removeSource(_ name: String, display: String, in sourceParent: Int32) throws(StorageError) {
        let removed = perform(.unlinkat(directory: sourceParent, path: name, flags: 0))
        guard removed >= 0 else {
            throw StorageError(.remove, path: display, errno: Errno(rawValue: -removed))
        }
    }

    /// Syncs the folders from the destination's parent down to the one holding `path`, each once a
    /// run, so that the names of copied files and of the folders made for them survive a power loss.
    private func syncFolders(of path: [String], in directory: BeneathDirectory) throws(StorageError) {
        let key = String(directory.fd)
        if syncedFolders.insert([key, ".."]).inserted {
            // The destination's own name, when `makeDirectory` made it.
            let above = openat(directory.fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if above >= 0 {
                defer { Glibc.close(above) }
                try sync(above, display: target + "/..")
            }
        }
        for depth in 0..<path.count {
            let folder = Array(path[..<depth])
            guard syncedFolders.insert([key] + folder).inserted else { continue }
            let descriptor = try directory.openParent(of: folder + [path[path.count - 1]], create: false)
            defer { if descriptor != directory.fd { Glibc.close(descriptor) } }
            try sync(descriptor, display: BeneathDirectory.display(folder))
        }
    }

    private func sync(_ descriptor: Int32, display: String) throws(StorageError) {
        let synced = perform(.fsync(fd: descriptor, dataOnly: false))
        guard synced >= 0 else {
            throw StorageError(.sync, path: display, errno: Errno(rawValue: -synced))
        }
    }

    /// Copies the regular file `name` across file systems: into a part file, synced, dated as the
    /// source, then renamed into place.
    private func copy(
        _ name: String, display: String, from sourceParent: Int32, to targetParent: Int32, info: stat
    ) throws(StorageError) {
        let partName = name + Self.partSuffix
        let input = openat(sourceParent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else {
            throw StorageError(.open, path: display, errno: Errno(rawValue: Glibc.errno))
        }
        defer { Glibc.close(input) }
        let output = openat(
            targetParent, partName, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
            BeneathDirectory.fileMode)
        guard output >= 0 else {
            throw StorageError(.open, path: display + Self.partSuffix, errno: Errno(rawValue: Glibc.errno))
        }
        var closed = false
        defer { if !closed { Glibc.close(output) } }
        do throws(StorageError) {
            try copyData(from: input, to: output, size: Int64(info.st_size), display: display)
            guard ftruncate(output, off_t(info.st_size)) == 0 else {
                throw StorageError(.write, path: display, errno: Errno(rawValue: Glibc.errno))
            }
            let synced = perform(.fsync(fd: output, dataOnly: false))
            guard synced >= 0 else {
                throw StorageError(.sync, path: display, errno: Errno(rawValue: -synced))
            }
            var times = [info.st_atim, info.st_mtim]
            guard futimens(output, &times) == 0 else {
                throw StorageError(.write, path: display, errno: Errno(rawValue: Glibc.errno))
            }
            Glibc.close(output)
            closed = true
            let renamed = perform(
                .renameat(
                    fromDirectory: targetParent, from: partName, toDirectory: targetParent, to: name,
                    flags: Self.renameNoReplace))
            guard renamed != -EEXIST else {
                throw StorageError(.move, path: display, reason: .destinationOccupied)
            }
            guard renamed >= 0 else {
                throw StorageError(.rename, path: display, errno: Errno(rawValue: -renamed))
            }
        } catch {
            unlinkat(targetParent, partName, 0)
            throw error
        }
    }

    /// Copies the data extents of `input` (holes are skipped: the part file is sized at the end).
    private func copyData(
        from input: Int32, to output: Int32, size: Int64, display: String
    ) throws(StorageError) {
        var offset: Int64 = 0
        while offset < size {
            let dataStart = lseek(input, off_t(offset), Self.seekData)
            if dataStart < 0 {
                if Glibc.errno == ENXIO { return }  // nothing but a hole from here on
                throw StorageError(.read, path: display, errno: Errno(rawValue: Glibc.errno))
            }
            let holeStart = lseek(input, dataStart, Self.seekHole)
            let extentEnd = holeStart < 0 ? size : min(size, Int64(holeStart))
            var position = Int64(dataStart)
            while position < extentEnd {
                position = try copyChunks(
                    from: input, to: output, at: position, end: extentEnd, display: display)
            }
            offset = extentEnd
        }
    }

    /// Reads up to `chunksInFlight` chunks at once, then writes them at once; returns where it stopped.
    private func copyChunks(
        from input: Int32, to output: Int32, at start: Int64, end: Int64, display: String
    )
        throws(StorageError) -> Int64
    {
        var lengths: [Int] = []
        var position = start
        while position < end && lengths.count < Self.chunksInFlight {
            let length = Int(min(Int64(Self.chunkBytes), end - position))
            lengths.append(length)
            position += Int64(length)
        }
        let readResults = performAll(
            lengths.indices.map { index in
                let chunk = UnsafeMutableRawBufferPointer(
                    rebasing: buffer[(index * Self.chunkBytes)...].prefix(lengths[index]))
                return .read(fd: input, into: chunk, offset: UInt64(start) + UInt64(index * Self.chunkBytes))
            })
        for (index, result) in readResults.enumerated() {
            guard result >= 0 else {
                throw StorageError(.read, path: display, errno: Errno(rawValue: -result))
            }
            guard Int(result) == lengths[index] else {
                throw StorageError(.read, path: display, reason: .unexpectedEndOfFile)
            }
        }
        let writeResults = performAll(
            lengths.indices.map { index in
                let chunk = UnsafeRawBufferPointer(
                    rebasing: buffer[(index * Self.chunkBytes)...].prefix(lengths[index]))
                return .write(
                    fd: output, bytes: chunk, offset: UInt64(start) + UInt64(index * Self.chunkBytes))
            })
        for (index, result) in writeResults.enumerated() {
            guard result >= 0 else {
                throw StorageError(.write, path: display, errno: Errno(rawValue: -result))
            }
            guard Int(result) == lengths[index] else {
                throw StorageError(.write, path: display, reason: .noProgress)
            }
        }
        return position
    }

    // MARK: Around the files

    /// Moves a file named by full paths (no torrent path rules: the engine chose both).
    private func moveExtra(_ extra: ExtraFile) throws(StorageError) {
        guard access(extra.from, F_OK) == 0 else { return }
        let renamed = perform(
            .renameat(
                fromDirectory: AT_FDCWD, from: extra.from, toDirectory: AT_FDCWD, to: extra.to, flags: 0))
        if renamed >= 0 { return }
        guard Errno(rawValue: -renamed) == Errno(rawValue: EXDEV) else {
            throw StorageError(.move, path: extra.from, errno: Errno(rawValue: -renamed))
        }
        guard let bytes = try SmallFile.read(extra.from, maximumBytes: 64 << 20) else {
            throw StorageError(.read, path: extra.from, reason: .outOfRange)
        }
        try SmallFile.writeAtomically(bytes, to: extra.to)
        unlink(extra.from)
    }

    /// Creates `path` and its missing parents (the user chose it: links in it are followed).
    private func makeDirectory(_ path: String) throws(StorageError) {
        var built = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            built += "/" + component
            if mkdir(built, BeneathDirectory.directoryMode) != 0 && Glibc.errno != EEXIST {
                throw StorageError(.createDirectory, path: built, errno: Errno(rawValue: Glibc.errno))
            }
        }
    }

    /// Removes the folders of the torrent's files that are now empty, deepest first; a folder that
    /// still holds anything (a file of the user's) stays.
    private func removeEmptiedFolders(in directory: BeneathDirectory) {
        var folders = Set<[String]>()
        for path in files {
            for depth in stride(from: path.count - 1, to: 0, by: -1) { folders.insert(Array(path[..<depth])) }
        }
        for folder in folders.sorted(by: { $0.count > $1.count }) {
            guard let parent = try? directory.openParent(of: folder, create: false) else { continue }
            _ = perform(.unlinkat(directory: parent, path: folder[folder.count - 1], flags: AT_REMOVEDIR))
            if parent != directory.fd { Glibc.close(parent) }
        }
    }

    // MARK: The ring

    /// Runs one operation and returns its result (negative: `-errno`).
    private func perform(_ operation: URing.Operation) -> Int32 {
        performAll([operation])[0]
    }

    /// Runs operations together and returns their results in order.
    private func performAll(_ operations: [URing.Operation]) -> [Int32] {
        var results = [Int32?](repeating: nil, count: operations.count)
        guard let ring else { return results.map { _ in -EBADF } }
        do {
            for (index, operation) in operations.enumerated() {
                _ = try ring.enqueue(operation, for: OperationSlot(index: UInt32(index), generation: 0))
            }
            var pending = operations.count
            while pending > 0 {
                try ring.submitAndWait(minimumCompletions: 1)
                pending -= ring.drain { completion in results[Int(completion.slot.index)] = completion.result
                }
            }
        } catch {
            // The ring itself failed; whatever did not complete fails with its error.
            return results.map { $0 ?? -error.errno.rawValue }
        }
        return results.map { $0! }
    }
}
