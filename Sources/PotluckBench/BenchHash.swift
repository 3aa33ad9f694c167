import ArgumentParser
import Buffers
import CommandSupport
import Hashing

struct BenchHash: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "SHA-1 throughput per core and for the hashing pool, beside `openssl speed`.",
        discussion: """
            Hashes buffers of each piece size in place, as downloads verify pieces: once on one thread \
            (the per-core figure), then on the pool with one worker per core. `openssl speed -evp sha1` \
            runs on the same machine in the same run; the ratio compares Potluck's per-core figure to it. \
            The last column hashes sixteen pieces at once in AVX-512 lanes, as rechecks and `create` do \
            ("-" where the CPU lacks AVX-512).
            """)

    @Option(
        name: .customLong("piece-size"), parsing: .upToNextOption,
        help: "Piece sizes to measure, in KiB (default: 256 1024 4096).")
    var pieceSizesKiB: [Int] = [256, 1024, 4096]

    @Option(help: "Seconds to measure each figure.")
    var seconds: Double = 1.0

    @Option(help: "Hashing pool threads (default: one per core).")
    var threads: Int = HashPool.coreCount

    func validate() throws {
        guard pieceSizesKiB.allSatisfy({ $0 >= 16 && $0 <= 65536 }) else {
            throw ValidationError("piece sizes must be between 16 and 65536 KiB")
        }
        guard seconds > 0 && seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        guard threads > 0 && threads <= 256 else { throw ValidationError("--threads must be in 1...256") }
    }

    func run() throws { try measure() }

    func measure() throws {
        let openssl = ExternalCommand.find("openssl")
        if openssl == nil {
            printError("openssl is not installed (Debian package `openssl`): its column stays empty")
        }
        var table = Table(
            "piece size", "potluck, 1 core", "openssl speed, 1 core", "potluck / openssl",
            "potluck pool, \(threads) threads (wall clock)", "16 pieces at once, 1 core")
        for kib in pieceSizesKiB {
            let size = kib * 1024
            printError("hashing \(Format.bytes(size)) pieces...")
            let single = singleThreadRate(pieceBytes: size)
            let reference = openssl.flatMap { opensslRate(executable: $0, pieceBytes: size) }
            let pool = try poolRate(pieceBytes: size)
            table.add(
                Format.bytes(size), Format.gigabytesPerSecond(single),
                reference.map(Format.gigabytesPerSecond) ?? "-",
                reference.map { Format.percent(single / $0) } ?? "-",
                Format.gigabytesPerSecond(pool),
                Self.lanesPerCoreRate(pieceBytes: size, seconds: seconds).map(Format.gigabytesPerSecond)
                    ?? "-")
        }
        print("SHA-1 throughput (\(HashPool.coreCount) cores)\n")
        print(table.rendered)
    }

    /// One thread hashing one buffer over and over, through the same hasher the pool's workers use.
    /// Bytes per second of that thread's CPU time, the basis `openssl speed` reports on too, so that
    /// other load on the machine does not skew the ratio.
    private func singleThreadRate(pieceBytes: Int) -> Double {
        Self.perCoreRate(pieceBytes: pieceBytes, seconds: seconds)
    }

    static func perCoreRate(pieceBytes: Int, seconds: Double) -> Double {
        let buffer = [UInt8](repeating: 0x5a, count: pieceBytes)
        let hasher = StreamingHasher(.sha1)
        var sink = 0
        var hashed = 0
        let start = ThreadCPU.seconds()
        repeat {
            hasher.update(buffer)
            sink &+= Int(hasher.finishSHA1().bytes[0])
            hashed += pieceBytes
        } while ThreadCPU.seconds() - start < seconds
        precondition(sink != -1)  // keeps the digests alive
        return Double(hashed) / (ThreadCPU.seconds() - start)
    }

    /// `SHA1Lanes` hashing sixteen buffers at once, as rechecks and `create` do, in bytes per second of
    /// the thread's CPU time; nil where the CPU lacks AVX-512.
    static func lanesPerCoreRate(pieceBytes: Int, seconds: Double) -> Double? {
        guard SHA1Lanes.isAvailable else { return nil }
        let buffer = [UInt8](repeating: 0x5a, count: pieceBytes)
        let lanes = SHA1Lanes()
        var sink = 0
        var hashed = 0
        let start = ThreadCPU.seconds()
        buffer.withUnsafeBytes { bytes in
            let pieces = [UnsafeRawBufferPointer](repeating: bytes, count: SHA1Lanes.laneCount)
            repeat {
                sink &+= Int(lanes.digests(of: pieces)[0].bytes[0])
                hashed += pieceBytes * pieces.count
            } while ThreadCPU.seconds() - start < seconds
        }
        precondition(sink != -1)  // keeps the digests alive
        return Double(hashed) / (ThreadCPU.seconds() - start)
    }

    /// The pool kept full: as many pieces in flight as twice its threads, which it hashes one at a
    /// time, as a download verifies its pieces.
    private func poolRate(pieceBytes: Int) throws -> Double {
        let buffers = BufferPool(slotSizeBytes: pieceBytes, slotCount: threads * 2)
        let pool = try HashPool(threadCount: threads)
        var hashed = 0
        var token: UInt64 = 0
        let watch = Stopwatch()
        while watch.wallSeconds < seconds {
            while let slot = buffers.lease() {
                pool.submit(slot, length: pieceBytes, in: buffers, kind: .sha1, token: token)
                token += 1
            }
            pool.drain(into: buffers, wait: true) { result in
                hashed += pieceBytes
                buffers.release(result.slot!)
            }
        }
        while pool.outstandingCount > 0 {
            pool.drain(into: buffers, wait: true) { buffers.release($0.slot!) }
        }
        return Double(hashed) / watch.wallSeconds
    }

    /// `openssl speed -evp sha1 -mr` for one block size, in bytes per second of user CPU time.
    private func opensslRate(executable: String, pieceBytes: Int) -> Double? {
        let whole = max(1, Int(seconds.rounded(.up)))
        let limit = Double(whole) * 10 + 30
        guard
            let output = try? ExternalCommand.run(
                executable,
                ["speed", "-evp", "sha1", "-mr", "-bytes", "\(pieceBytes)", "-seconds", "\(whole)"],
                timeoutSeconds: limit),
            output.status == 0
        else { return nil }
        // Machine-readable result line: +F:<n>:sha1:<bytes per second>
        for line in output.standardOutput.split(separator: "\n") where line.hasPrefix("+F:") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0) }) { return value }
        }
        return nil
    }
}
