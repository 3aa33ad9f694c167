import Glibc
import TransmissionRPC

/// A .torrent file named by a torrent-add `filename` on this machine: read only if it is a regular
/// file no larger than a fetched one may be, so that a client naming `/dev/zero`, a FIFO or a large
/// data file gets an error instead of the daemon filling its memory or waiting forever.
enum LocalTorrentFile {
    static func read(_ path: String) throws -> [UInt8] {
        // Non-blocking: opening a FIFO must not wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw RPCFailure("cannot read the torrent file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw RPCFailure("cannot read the torrent file \(path): not a regular file")
        }
        let limit = TorrentURLFetcher.maximumBytes
        guard status.st_size <= limit else {
            throw RPCFailure("the torrent file \(path) is \(status.st_size) bytes; at most \(limit) are read")
        }
        // One byte more than its size is asked for: a file that grew since `fstat` is refused.
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes {
                Glibc.read(fd, $0.baseAddress! + count, $0.count - count)
            }
            if got == 0 { break }
            guard got > 0 else {
                if errno == EINTR { continue }
                throw RPCFailure("cannot read the torrent file \(path): \(String(cString: strerror(errno)))")
            }
            count += got
        }
        guard count < bytes.count else {
            throw RPCFailure("the torrent file \(path) changed while it was read")
        }
        return Array(bytes[..<count])
    }
}
