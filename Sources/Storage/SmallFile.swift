import Glibc
import URing

/// Small files read and written whole with plain system calls (resume data, the DHT's routing table):
/// blocking, for chores off the reactor and for start-up and shutdown.
public enum SmallFile {
    /// The bytes of the regular file at `path`, or nil when it is larger than `maximumBytes`. A file
    /// that shrinks while being read gives what was there. Anything but a regular file is refused, and
    /// opened without blocking first, so a FIFO named here cannot wait for a writer.
    public static func read(_ path: String, maximumBytes: Int) throws(StorageError) -> [UInt8]? {
        let fd = retryingInterrupts { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        guard fd >= 0 else { throw StorageError(.open, path: path, errno: Errno(rawValue: Glibc.errno)) }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw StorageError(.stat, path: path, errno: Errno(rawValue: Glibc.errno))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw StorageError(.open, path: path, reason: .notARegularFile)
        }
        guard info.st_size <= maximumBytes else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { raw in
                Glibc.read(fd, raw.baseAddress! + filled, raw.count - filled)
            }
            if count < 0 && Glibc.errno == EINTR { continue }
            guard count >= 0 else {
                throw StorageError(.read, path: path, errno: Errno(rawValue: Glibc.errno))
            }
            if count == 0 { break }
            filled += count
        }
        return Array(bytes[..<filled])
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, renamed
    /// over `path`, then the directory synced so the rename itself survives a crash.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(StorageError) {
        let temporaryPath = path + ".tmp"
        let fd = retryingInterrupts { open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        guard fd >= 0 else {
            throw StorageError(.open, path: temporaryPath, errno: Errno(rawValue: Glibc.errno))
        }
        var written = 0
        var failure: StorageError?
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
            }
            if count < 0 && Glibc.errno == EINTR { continue }
            guard count > 0 else {
                failure = StorageError(
                    .write, path: temporaryPath,
                    reason: count < 0 ? .system(Errno(rawValue: Glibc.errno)) : .noProgress)
                break
            }
            written += count
        }
        if failure == nil && fsync(fd) != 0 {
            failure = StorageError(.sync, path: temporaryPath, errno: Errno(rawValue: Glibc.errno))
        }
        Glibc.close(fd)
        if failure == nil && rename(temporaryPath, path) != 0 {
            failure = StorageError(.rename, path: path, errno: Errno(rawValue: Glibc.errno))
        }
        if let failure {
            unlink(temporaryPath)
            throw failure
        }
        let directoryPath = directory(of: path)
        let directoryFD = retryingInterrupts { open(directoryPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard directoryFD >= 0 else {
            throw StorageError(.openDirectory, path: directoryPath, errno: Errno(rawValue: Glibc.errno))
        }
        defer { Glibc.close(directoryFD) }
        guard fsync(directoryFD) == 0 else {
            throw StorageError(.sync, path: directoryPath, errno: Errno(rawValue: Glibc.errno))
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
