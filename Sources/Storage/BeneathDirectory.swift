import Glibc
import URing

/// A file's size and modification time, as resume data records them to notice files changed behind
/// the engine's back.
public struct FileStatus: Hashable, Sendable {
    /// The file's size in bytes.
    public let sizeBytes: Int64
    /// Nanoseconds since the Unix epoch.
    public let modificationTimeNanoseconds: Int64

    /// A status as recorded or observed.
    public init(sizeBytes: Int64, modificationTimeNanoseconds: Int64) {
        self.sizeBytes = sizeBytes
        self.modificationTimeNanoseconds = modificationTimeNanoseconds
    }

    init(_ info: stat) {
        sizeBytes = Int64(info.st_size)
        // Held at the largest value past the year 2262 (a file can be dated so): it then matches no
        // recorded status, and the file is checked, where trapping stopped every start.
        let seconds = Int64(info.st_mtim.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        let total = seconds.partialValue.addingReportingOverflow(Int64(info.st_mtim.tv_nsec))
        modificationTimeNanoseconds = seconds.overflow || total.overflow ? .max : total.partialValue
    }
}

/// Which file an open descriptor or a path names: the same pair means the same file.
struct FileIdentity: Hashable {
    let device: UInt64
    let inode: UInt64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

/// What a torrent path names now, symbolic links not followed.
enum PathEntry: Equatable {
    case file(FileIdentity)
    case directory
    case symlink
    /// A FIFO, a device, a socket.
    case other
    /// Nothing, or a folder on the way is missing or not a folder.
    case missing

    /// In the words of an error message ("it is now …").
    var description: String {
        switch self {
        case .file: "another file"
        case .directory: "a directory"
        case .symlink: "a symbolic link"
        case .other: "neither a file nor a directory"
        case .missing: "missing"
        }
    }
}

/// Opens torrent paths beneath a directory descriptor, one component at a time, never following a
/// symbolic link: a torrent's paths and whatever someone planted in the download folder cannot make
/// the engine read or write outside it.
///
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` would do this in one call, but it is reachable only
/// through the variadic `syscall`, which Swift cannot call; the walk costs a few system calls per open,
/// and opening is rare.
///
/// Invariant: `fd` is an open directory for the value's whole life; its owner closes it.
struct BeneathDirectory {
    let fd: Int32

    /// Mode for created directories and files; the umask narrows it.
    static let directoryMode: mode_t = 0o755
    static let fileMode: mode_t = 0o644

    /// Opens a directory given by the user (symbolic links followed: the user chose it).
    static func open(path: String) throws(StorageError) -> BeneathDirectory {
        let fd = retryingInterrupts { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else {
            throw StorageError(.openDirectory, path: path, errno: Errno(rawValue: Glibc.errno))
        }
        return BeneathDirectory(fd: fd)
    }

    /// The display form of a torrent path.
    static func display(_ path: [String]) -> String { path.joined(separator: "/") }

    /// Opens the regular file at `path` with `flags` (`O_RDWR`, `O_RDONLY`, plus `O_CREAT` to create it
    /// and its parent directories).
    func openFile(_ path: [String], flags: Int32) throws(StorageError) -> Int32 {
        let create = flags & O_CREAT != 0
        let parent: Int32
        do {
            parent = try openParent(of: path, create: create)
        } catch {
            // A missing folder means a missing file; the user knows the file's name, not the folder's.
            if error.errno == .noSuchFile {
                throw StorageError(.open, path: Self.display(path), errno: .noSuchFile)
            }
            throw error
        }
        defer { if parent != fd { Glibc.close(parent) } }
        // O_NONBLOCK keeps a planted FIFO from blocking the open; it is refused just below.
        let fileFlags = flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        let name = path[path.count - 1]
        let file = retryingInterrupts { openat(parent, name, fileFlags, Self.fileMode) }
        guard file >= 0 else {
            throw refusal(.open, path: path, errno: Errno(rawValue: Glibc.errno), parent: parent, name: name)
        }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(file)
            throw StorageError(.open, path: Self.display(path), reason: .notARegularFile)
        }
        return file
    }

    /// The size and modification time of the file at `path`, or nil when it does not exist.
    func status(of path: [String]) throws(StorageError) -> FileStatus? {
        let parent: Int32
        do {
            parent = try openParent(of: path, create: false)
        } catch {
            if error.errno == .noSuchFile { return nil }
            throw error
        }
        defer { if parent != fd { Glibc.close(parent) } }
        var info = stat()
        guard fstatat(parent, path[path.count - 1], &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            let errno = Errno(rawValue: Glibc.errno)
            if errno == .noSuchFile { return nil }
            throw StorageError(.stat, path: Self.display(path), errno: errno)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            let reason: StorageError.Reason =
                info.st_mode & S_IFMT == S_IFLNK ? .symlinkRefused : .notARegularFile
            throw StorageError(.stat, path: Self.display(path), reason: reason)
        }
        return FileStatus(info)
    }

    /// What `path` names now, walking beneath the directory as ``openFile(_:flags:)`` does: a few
    /// system calls, like an open.
    func entry(at path: [String]) -> PathEntry {
        let parent: Int32
        do {
            parent = try openParent(of: path, create: false)
        } catch {
            return error.reason == .symlinkRefused ? .symlink : .missing
        }
        defer { if parent != fd { Glibc.close(parent) } }
        var info = stat()
        guard fstatat(parent, path[path.count - 1], &info, AT_SYMLINK_NOFOLLOW) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file(FileIdentity(info))
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// Throws unless the process may create and write files in the directory itself: a read-only file
    /// system (even for root) or a missing permission.
    func requireWritable(path: String) throws(StorageError) {
        guard faccessat(fd, ".", W_OK, AT_EACCESS) == 0 else {
            throw StorageError(.writeInFolder, path: path, errno: Errno(rawValue: Glibc.errno))
        }
    }

    /// Opens the directory holding `path`'s last component, creating missing directories if asked.
    /// Returns `fd` itself for a top-level file; any other descriptor is the caller's to close.
    func openParent(of path: [String], create: Bool) throws(StorageError) -> Int32 {
        guard !path.isEmpty, path.allSatisfy(Self.isSafeComponent) else {
            throw StorageError(.open, path: Self.display(path), reason: .unsafePath)
        }
        var current = fd
        for depth in 0..<(path.count - 1) {
            let name = path[depth]
            let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            var next = retryingInterrupts { openat(current, name, flags) }
            if next < 0 && Glibc.errno == ENOENT && create {
                // Another thread or process may create it between the two calls: EEXIST is success.
                if mkdirat(current, name, Self.directoryMode) != 0 && Glibc.errno != EEXIST {
                    let errno = Errno(rawValue: Glibc.errno)
                    if current != fd { Glibc.close(current) }
                    throw StorageError(
                        .createDirectory, path: Self.display(Array(path[...depth])), errno: errno)
                }
                next = retryingInterrupts { openat(current, name, flags) }
            }
            if next < 0 {
                let error = refusal(
                    .openDirectory, path: Array(path[...depth]), errno: Errno(rawValue: Glibc.errno),
                    parent: current, name: name)
                if current != fd { Glibc.close(current) }
                throw error
            }
            if current != fd { Glibc.close(current) }
            current = next
        }
        return current
    }

    /// Names the refusal of a failed open: a symbolic link (`ELOOP` from `O_NOFOLLOW`, or `ENOTDIR`
    /// for a link where a directory should be) is reported as such, not as a bare errno.
    private func refusal(
        _ operation: StorageError.Operation, path: [String], errno: Errno, parent: Int32, name: String
    ) -> StorageError {
        let display = Self.display(path)
        if errno.rawValue == ELOOP { return StorageError(operation, path: display, reason: .symlinkRefused) }
        if errno.rawValue == ENOTDIR || errno.rawValue == ENXIO {
            var info = stat()
            if fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
                let kind = info.st_mode & S_IFMT
                if kind == S_IFLNK { return StorageError(operation, path: display, reason: .symlinkRefused) }
                if kind != S_IFREG && kind != S_IFDIR {
                    return StorageError(operation, path: display, reason: .notARegularFile)
                }
            }
        }
        return StorageError(operation, path: display, errno: errno)
    }

    /// Metainfo already rejects these; storage checks again because a path is the one input that
    /// could make it write anywhere on the machine.
    static func isSafeComponent(_ component: String) -> Bool {
        !component.isEmpty && component != "." && component != ".."
            && !component.utf8.contains(UInt8(ascii: "/")) && !component.utf8.contains(0)
    }
}

/// Runs a system call again while it fails with `EINTR`.
func retryingInterrupts(_ call: () -> Int32) -> Int32 {
    while true {
        let result = call()
        if result >= 0 || Glibc.errno != EINTR { return result }
    }
}
