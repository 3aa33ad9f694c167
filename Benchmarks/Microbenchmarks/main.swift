// Microbenchmarks for Potluck's hot paths. Each prints time per operation and throughput; for stable
// instruction counts on a noisy machine run one under callgrind (see README, "Benchmarks").
//
//   swift run -c release potluck-microbench [NAME...]
import Buffers
import Foundation
import Glibc
import Hashing
import PeerWire
import TorrentModel
import URing

struct Microbenchmark {
    let name: String
    let unit: String
    /// Runs `iterations` operations and returns how many bytes they covered (0 if not a data path).
    let body: (_ iterations: Int) throws -> Int
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

let pieceBytes = 1 << 20
let benchmarks: [Microbenchmark] = [
    Microbenchmark(name: "sha1-piece-1MiB", unit: "piece") { iterations in
        let piece = [UInt8](repeating: 0x5a, count: pieceBytes)
        let hasher = StreamingHasher(.sha1)
        for _ in 0..<iterations {
            hasher.update(piece)
            precondition(hasher.finishSHA1() != SHA1Digest(bytes: [UInt8](repeating: 0, count: 20))!)
        }
        return iterations * pieceBytes
    },
    Microbenchmark(name: "hash-pool-1MiB", unit: "piece") { iterations in
        let buffers = BufferPool(slotSizeBytes: pieceBytes, slotCount: 2 * HashPool.coreCount)
        let pool = HashPool()
        var submitted = 0
        var finished = 0
        while finished < iterations {
            while submitted < iterations, let slot = buffers.lease() {
                pool.submit(slot, length: pieceBytes, in: buffers, kind: .sha1, token: UInt64(submitted))
                submitted += 1
            }
            pool.drain(into: buffers, wait: true) { result in
                finished += 1
                buffers.release(result.slot)
            }
        }
        return iterations * pieceBytes
    },
    Microbenchmark(name: "ring-nop-batch64", unit: "op") { iterations in
        let ring = try Ring()
        var completed = 0
        let slot = OperationSlot(index: 1, generation: 1)
        while completed < iterations {
            let batch = min(64, iterations - completed)
            for _ in 0..<batch { try ring.enqueue(.nop, for: slot) }
            var seen = 0
            while seen < batch {
                try ring.submitAndWait(minimumCompletions: batch - seen)
                seen += ring.drain { _ in }
            }
            completed += batch
        }
        return 0
    },
    Microbenchmark(name: "wire-decode-16KiB-blocks", unit: "block") { iterations in
        // A stream of piece messages cut into 64 KiB receive chunks, each payload copied once into a
        // piece buffer: the download path between recv and hashing.
        let blockBytes = Int(PieceGeometry.standardBlockLength)
        let blocksPerPiece = pieceBytes / blockBytes
        let geometry = PieceGeometry(totalLength: Int64(pieceBytes) * 64, pieceLength: pieceBytes)
        var stream: [UInt8] = []
        let payload = [UInt8](repeating: 0x33, count: blockBytes)
        for i in 0..<(blocksPerPiece * 4) {
            let block = geometry.block(i % blocksPerPiece, of: PieceIndex(i / blocksPerPiece))
            WireEncoder.appendPiece(block, payload: payload.span, into: &stream)
        }
        let pieceBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes * 4, alignment: 4096)
        defer { pieceBuffer.deallocate() }
        var decoder = WireDecoder(geometry: geometry, expectsHandshake: false)
        var blocks = 0
        let chunkBytes = 64 * 1024
        while blocks < iterations {
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunkBytes, stream.count)
                do {
                    try decoder.feed(stream[offset..<end].span) { event in
                        if case .blockData(let block, let offsetInBlock, let bytes) = event {
                            let start = block.piece.int % 4 * pieceBytes + Int(block.offset) + offsetInBlock
                            bytes.withUnsafeBytes { source in
                                (pieceBuffer.baseAddress! + start).copyMemory(
                                    from: source.baseAddress!, byteCount: source.count)
                            }
                            if offsetInBlock + bytes.count == Int(block.length) { blocks += 1 }
                        }
                    }
                }
                offset = end
            }
        }
        return blocks * blockBytes
    },
    // Serving 16 KiB blocks through the ring to a socket drained by another thread: the old upload
    // path copied each payload into the outbound bytes; the new one sends header and payload in one
    // sendmsg from where the payload already is.
    Microbenchmark(name: "upload-16KiB-copy-then-send", unit: "block") { iterations in
        try uploadBenchmark(iterations: iterations, gather: false)
    },
    Microbenchmark(name: "upload-16KiB-sendmsg", unit: "block") { iterations in
        try uploadBenchmark(iterations: iterations, gather: true)
    },
]

/// Sends `iterations` piece messages of 16 KiB, eight per send, over a Unix socket pair.
func uploadBenchmark(iterations: Int, gather: Bool) throws -> Int {
    let blockBytes = Int(PieceGeometry.standardBlockLength)
    let geometry = PieceGeometry(totalLength: Int64(pieceBytes) * 64, pieceLength: pieceBytes)
    var pair: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { fatalError("socketpair") }
    let readEnd = pair[1]
    let reader = Thread {
        let sink = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { sink.deallocate() }
        while recv(readEnd, sink, 1 << 20, 0) > 0 {}
    }
    reader.start()
    defer {
        close(pair[0])
        usleep(10_000)
        close(pair[1])
    }
    let ring = try Ring()
    let slot = OperationSlot(index: 1, generation: 1)
    let cache = [UInt8](repeating: 0x42, count: pieceBytes)
    var outbound: [UInt8] = []
    outbound.reserveCapacity(8 * (blockBytes + 13))
    let vector = SendVector(capacity: 17)
    var positions: [Int] = []
    positions.reserveCapacity(8)
    var sent = 0
    try cache.withUnsafeBytes { piece in
        while sent < iterations {
            let batch = min(8, iterations - sent)
            outbound.removeAll(keepingCapacity: true)
            positions.removeAll(keepingCapacity: true)
            for i in 0..<batch {
                let block = geometry.block((sent + i) % (pieceBytes / blockBytes), of: PieceIndex(0))
                let payload = UnsafeRawBufferPointer(
                    rebasing: piece[Int(block.offset)..<Int(block.offset) + blockBytes])
                if gather {
                    WireEncoder.appendPieceHeader(for: block, into: &outbound)
                    positions.append(outbound.count)
                } else {
                    WireEncoder.appendPiece(
                        block, payload: Span<UInt8>(_unsafeBytes: payload), into: &outbound)
                }
            }
            try outbound.withUnsafeBytes { bytes in
                if gather {
                    vector.removeAll()
                    var from = 0
                    for (i, position) in positions.enumerated() {
                        vector.append(UnsafeRawBufferPointer(rebasing: bytes[from..<position]))
                        let offset = (sent + i) % (pieceBytes / blockBytes) * blockBytes
                        vector.append(UnsafeRawBufferPointer(rebasing: piece[offset..<offset + blockBytes]))
                        from = position
                    }
                    while vector.remainingBytes > 0 {
                        try ring.enqueue(.sendMessage(fd: pair[0], vector: vector), for: slot)
                        try ring.submitAndWait(minimumCompletions: 1)
                        ring.drain { vector.advance(by: Int($0.result)) }
                    }
                } else {
                    var offset = 0
                    while offset < bytes.count {
                        try ring.enqueue(
                            .send(fd: pair[0], bytes: UnsafeRawBufferPointer(rebasing: bytes[offset...])),
                            for: slot)
                        try ring.submitAndWait(minimumCompletions: 1)
                        ring.drain { offset += Int($0.result) }
                    }
                }
            }
            sent += batch
        }
    }
    return iterations * blockBytes
}

let selected = CommandLine.arguments.dropFirst()
let unknown = selected.filter { name in !benchmarks.contains { $0.name == name } }
guard unknown.isEmpty else {
    print(
        "unknown benchmark: \(unknown.joined(separator: ", ")); known: \(benchmarks.map(\.name).joined(separator: ", "))"
    )
    exit(2)
}
print("| benchmark | time per op | throughput |")
print("|---|---|---|")
for benchmark in benchmarks where selected.isEmpty || selected.contains(benchmark.name) {
    // Warm up, then grow the iteration count until a run takes at least half a second.
    _ = try benchmark.body(1)
    var iterations = 1
    while true {
        let start = ContinuousClock.now
        let bytes = try benchmark.body(iterations)
        let elapsed = seconds(ContinuousClock.now - start)
        if elapsed >= 0.5 || iterations >= 1 << 30 {
            let perOperation = elapsed / Double(iterations)
            let time =
                perOperation >= 1e-3 ? "\(Int(perOperation * 1e6)) µs" : "\(Int(perOperation * 1e9)) ns"
            let throughput =
                bytes > 0
                ? "\(Int(Double(bytes) / elapsed / 1e6)) MB/s"
                : "\(Int(Double(iterations) / elapsed)) \(benchmark.unit)/s"
            print("| \(benchmark.name) | \(time) per \(benchmark.unit) | \(throughput) |")
            break
        }
        iterations *= elapsed > 0.05 ? 2 : 10
    }
}
