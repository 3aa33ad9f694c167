import Glibc
import URing

/// A failed storage operation: what was being done, to which file, and why, in words a user can act on.
///
/// Paths are relative to the download directory (as the torrent names them), or absolute for files
/// outside it such as the resume file.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The step that failed.
    public enum Operation: String, Hashable, Sendable {
        case openDirectory = "open the directory"
        case createDirectory = "create the directory"
        case writeInFolder = "write in the download folder"
        case open = "open"
        case preallocate = "preallocate"
        case read = "read"
        case write = "write"
        case sync = "sync to disk"
        case stat = "examine"
        case rename = "rename"
        case move = "move"
        case remove = "remove"
        case encode = "encode"
        case decode = "decode"
    }

    /// Why it failed.
    public enum Reason: Hashable, Sendable {
        /// The kernel refused with this errno.
        case system(Errno)
        /// A path component is a symbolic link: following it could leave the download directory.
        case symlinkRefused
        /// The path names something other than a regular file or directory (a FIFO, a device).
        case notARegularFile
        /// A path component is empty, `.`, `..`, or holds `/` or NUL: it could name a place outside the
        /// download directory.
        case unsafePath
        /// The file ends before the data asked for: it was never fully written.
        case unexpectedEndOfFile
        /// A write made no progress (0 bytes) though the kernel reported no error.
        case noProgress
        /// The file being written was removed, moved or replaced (by what `now` names: a directory, a
        /// symbolic link, another file, nothing) by someone else; what went to it since is lost.
        case replacedWhileWriting(now: String)
        /// The piece's buffer is smaller than the piece.
        case bufferTooSmall(requiredBytes: Int, availableBytes: Int)
        /// The request lies outside the torrent (a piece or block out of range).
        case outOfRange
        /// Too many requests are in flight; try again when some complete.
        case overloaded
        /// A resume file that is torn, corrupt or for another torrent; the text says what is wrong.
        case invalidResumeData(String)
        /// A file of the engine's own that is not what it should be; the text says what is wrong.
        case damaged(String)
        /// Something of the same name is already where a file is to go; it is never replaced.
        case destinationOccupied
    }

    /// The step that failed.
    public let operation: Operation
    /// The file or directory concerned (relative to the download directory for torrent files).
    public let path: String
    /// Why it failed.
    public let reason: Reason

    /// An error for `path` (relative to the download directory for torrent files).
    public init(_ operation: Operation, path: String, reason: Reason) {
        self.operation = operation
        self.path = path
        self.reason = reason
    }

    init(_ operation: Operation, path: String, errno: Errno) {
        self.init(operation, path: path, reason: .system(errno))
    }

    /// The errno, when the kernel reported one.
    // Not inlined: Swift 6.3's release optimizer trips its ownership verifier when this is inlined into
    // a function that then rethrows the same error.
    public var errno: Errno? {
        @inline(never) get {
            switch reason {
            case .system(let errno): errno
            default: nil
            }
        }
    }

    /// One sentence for a user: `cannot write "Show/e01.mkv": the disk is full (ENOSPC)`.
    public var description: String {
        let subject = "cannot \(operation.rawValue) \"\(path)\""
        switch reason {
        case .system(let errno):
            return "\(subject): \(Self.explain(errno))"
        case .symlinkRefused:
            return "\(subject): a component of the path is a symbolic link, which is never followed "
                + "because it could lead outside the download directory"
        case .notARegularFile:
            return "\(subject): it is not a regular file or directory"
        case .unsafePath:
            return "\(subject): the path could lead outside the download directory"
        case .unexpectedEndOfFile:
            return "\(subject): the file is shorter than the torrent says (it was not fully downloaded)"
        case .noProgress:
            return "\(subject): the kernel accepted no bytes"
        case .replacedWhileWriting(let now):
            return "\(subject): it was replaced or removed while being written (it is now \(now)); "
                + "what was written to it is lost, and nothing is written through what replaced it"
        case .bufferTooSmall(let required, let available):
            return "\(subject): the buffer holds \(available) bytes but the piece needs \(required)"
        case .outOfRange:
            return "\(subject): the request lies outside the torrent"
        case .overloaded:
            return "\(subject): too many storage requests are in flight"
        case .invalidResumeData(let detail):
            return "\(subject): the resume data is not usable (\(detail)); the data will be rechecked"
        case .damaged(let detail):
            return "\(subject): \(detail)"
        case .destinationOccupied:
            return "\(subject): something of the same name is already at the destination, and it is never "
                + "replaced"
        }
    }

    /// The errors users meet on disks, in their words; the errno name stays for searching.
    static func explain(_ errno: Errno) -> String {
        switch errno {
        case .noSpace: "the disk is full (ENOSPC)"
        case .quotaExceeded: "the disk quota is exhausted (EDQUOT)"
        case .permissionDenied, .notPermitted: "permission denied (\(errno.name ?? "EACCES"))"
        case .ioError: "the disk reported an I/O error (EIO); it may be failing"
        case .noSuchFile: "it does not exist (ENOENT)"
        case Errno(rawValue: EROFS): "the file system is read-only (EROFS)"
        case Errno(rawValue: EISDIR): "it is a directory (EISDIR)"
        default: "\(errno)"
        }
    }
}
