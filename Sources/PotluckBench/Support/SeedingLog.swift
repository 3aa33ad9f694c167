import Glibc

/// The torrents a `potluck seed --verbose` log says are seeding (its line "NAME: seeding NAME"), read
/// as the log grows: with thousands of torrents, reading it whole at every poll would cost more than
/// what it measures. Used from one thread.
final class SeedingLog {
    private let path: String
    private var offset: off_t = 0
    /// The end of the log after its last newline, kept until the line is complete.
    private var partial: [UInt8] = []
    private(set) var seeding: Set<String> = []

    init(path: String) { self.path = path }

    /// Reads what was appended since the last call; returns how many torrents are seeding.
    @discardableResult
    func update() -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return seeding.count }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            guard count > 0 else { break }
            offset += off_t(count)
            for byte in buffer[..<count] {
                if byte == UInt8(ascii: "\n") {
                    take(String(decoding: partial, as: UTF8.self))
                    partial.removeAll(keepingCapacity: true)
                } else {
                    partial.append(byte)
                }
            }
        }
        return seeding.count
    }

    private func take(_ line: String) {
        guard let marker = line.range(of: ": seeding ") else { return }
        seeding.insert(String(line[..<marker.lowerBound]))
    }
}
