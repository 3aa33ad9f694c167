// Microbenchmarks for Potluck's hot paths. Each prints time per operation and throughput; for stable
// instruction counts on a noisy machine run one under callgrind (see README, "Benchmarks").
//
//   swift run -c release potluck-microbench [NAME...]
import Buffers
import CommandSupport
import DHT
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

let pieceBytes = 1 << 20
let benchmarks: [Microbenchmark] = [
    Microbenchmark(name: "sha1-piece-1MiB", unit: "piece") { iterations in
        let piece = [UInt8](repeating: 0x5a, count: pieceBytes)
        let hasher = StreamingHasher(.sha1)
        for _ in 0..<iterations {
            hasher.update(piece)
            precondition(hasher.finishSHA1() != SHA1Digest([UInt8](repeating: 0, count: 20))!)
        }
        return iterations * pieceBytes
    },
    // Sixteen pieces a step: a recheck's or `create`'s hashing where the CPU has AVX-512 (else OpenSSL).
    Microbenchmark(name: "sha1-lanes-1MiB", unit: "piece") { iterations in
        let pieces = (0..<SHA1Lanes.laneCount).map { index in
            let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 64)
            piece.initializeMemory(as: UInt8.self, repeating: UInt8(index))
            return UnsafeRawBufferPointer(piece)
        }
        defer { for piece in pieces { piece.deallocate() } }
        let lanes = SHA1Lanes()
        var done = 0
        while done < iterations {
            let batch = min(SHA1Lanes.laneCount, iterations - done)
            precondition(lanes.digests(of: Array(pieces[..<batch])).count == batch)
            done += batch
        }
        return iterations * pieceBytes
    },
    Microbenchmark(name: "hash-pool-1MiB", unit: "piece") { iterations in
        let buffers = BufferPool(slotSizeBytes: pieceBytes, slotCount: 2 * HashPool.coreCount)
        let pool = try! HashPool()
        var submitted = 0
        var finished = 0
        while finished < iterations {
            while submitted < iterations, let slot = buffers.lease() {
                pool.submit(slot, length: pieceBytes, in: buffers, kind: .sha1, token: UInt64(submitted))
                submitted += 1
            }
            pool.drain(into: buffers, wait: true) { result in
                finished += 1
                buffers.release(result.slot!)
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
    // A DHT node decodes every datagram it receives; a get_peers answer with eight nodes and a token is
    // the most common one during a lookup.
    Microbenchmark(name: "krpc-decode-get-peers-answer", unit: "datagram") { iterations in
        let nodes = (0..<8).map { i in
            DHTNodeInfo(
                id: NodeID([UInt8](repeating: UInt8(i), count: 20))!,
                endpoint: DHTEndpoint(address: .v4(0x0a00_0001 + UInt32(i)), port: 6881))
        }
        let answer = KRPCMessage(
            transactionID: [1, 2],
            body: .response(
                KRPCResponse(
                    sender: NodeID([UInt8](repeating: 0xaa, count: 20))!, nodes: nodes, token: [9, 9, 9, 9])))
        let datagram = answer.encoded()
        for _ in 0..<iterations {
            precondition((try? KRPCMessage.decode(datagram)) == answer)
        }
        return 0
    },
    // Serving 16 KiB blocks through the ring to a loopback TCP socket drained by another thread: copying
    // each payload into the outbound bytes (the old path), one sendmsg of headers and payloads from where
    // the payloads are (the engine's path), and IORING_OP_SEND_ZC for the payloads (issue 7 asks for
    // send_zc where a benchmark shows it pays).
    Microbenchmark(name: "upload-16KiB-copy-then-send", unit: "block") { iterations in
        try uploadBenchmark(iterations: iterations, path: .copyThenSend)
    },
    Microbenchmark(name: "upload-16KiB-sendmsg", unit: "block") { iterations in
        try uploadBenchmark(iterations: iterations, path: .gather)
    },
    Microbenchmark(name: "upload-16KiB-send-zc", unit: "block") { iterations in
        try uploadBenchmark(iterations: iterations, path: .zeroCopy)
    },
]

enum UploadPath {
    case copyThenSend
    case gather
    case zeroCopy
}

/// A connected loopback TCP pair (zero-copy send needs TCP; a Unix socket refuses it).
func loopbackTCPPair() -> (sender: Int32, receiver: Int32) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let sender = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let connected = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
            guard bind(listener, raw, length) == 0, listen(listener, 1) == 0,
                getsockname(listener, raw, &length) == 0
            else { return false }
            return connect(sender, raw, length) == 0
        }
    }
    guard connected else { fatalError("cannot make a loopback TCP connection: errno \(errno)") }
    let receiver = accept(listener, nil, nil)
    close(listener)
    return (sender, receiver)
}

/// Sends `iterations` piece messages of 16 KiB, eight per batch, along `path`.
func uploadBenchmark(iterations: Int, path: UploadPath) throws -> Int {
    let blockBytes = Int(PieceGeometry.standardBlockLength)
    let blocksPerPiece = pieceBytes / blockBytes
    let geometry = PieceGeometry(totalLength: Int64(pieceBytes) * 64, pieceLength: pieceBytes)
    let (sender, readEnd) = loopbackTCPPair()
    let reader = Thread {
        let sink = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { sink.deallocate() }
        while recv(readEnd, sink, 1 << 20, 0) > 0 {}
    }
    reader.start()
    defer {
        close(sender)
        usleep(10_000)
        close(readEnd)
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

    /// Sends all of `bytes`, resubmitting after short sends.
    func sendAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            try ring.enqueue(
                .send(fd: sender, bytes: UnsafeRawBufferPointer(rebasing: bytes[offset...])), for: slot)
            try ring.submitAndWait(minimumCompletions: 1)
            ring.drain { completion in
                precondition(completion.result > 0, "send failed: \(completion.result)")
                offset += Int(completion.result)
            }
        }
    }

    try cache.withUnsafeBytes { piece in
        while sent < iterations {
            let batch = min(8, iterations - sent)
            outbound.removeAll(keepingCapacity: true)
            positions.removeAll(keepingCapacity: true)
            for i in 0..<batch {
                let block = geometry.block((sent + i) % blocksPerPiece, of: PieceIndex(0))
                let payload = UnsafeRawBufferPointer(
                    rebasing: piece[Int(block.offset)..<Int(block.offset) + blockBytes])
                if path == .copyThenSend {
                    WireEncoder.appendPiece(
                        block, payload: Span<UInt8>(_unsafeBytes: payload), into: &outbound)
                } else {
                    WireEncoder.appendPieceHeader(for: block, into: &outbound)
                    positions.append(outbound.count)
                }
            }
            try outbound.withUnsafeBytes { bytes in
                switch path {
                case .copyThenSend:
                    try sendAll(bytes)
                case .gather:
                    vector.removeAll()
                    var from = 0
                    for (i, position) in positions.enumerated() {
                        vector.append(UnsafeRawBufferPointer(rebasing: bytes[from..<position]))
                        let offset = (sent + i) % blocksPerPiece * blockBytes
                        vector.append(UnsafeRawBufferPointer(rebasing: piece[offset..<offset + blockBytes]))
                        from = position
                    }
                    while vector.remainingBytes > 0 {
                        try ring.enqueue(.sendMessage(fd: sender, vector: vector), for: slot)
                        try ring.submitAndWait(minimumCompletions: 1)
                        ring.drain { vector.advance(by: Int($0.result)) }
                    }
                case .zeroCopy:
                    // Header and payload of every block as one linked chain (so they stay in order on
                    // the socket), submitted at once; the payloads' notifications are awaited before the
                    // next batch, as an engine would before reusing those buffers.
                    var from = 0
                    var expected = 0
                    for (i, position) in positions.enumerated() {
                        let offset = (sent + i) % blocksPerPiece * blockBytes
                        let isLast = i == positions.count - 1
                        try ring.enqueue(
                            .send(
                                fd: sender, bytes: UnsafeRawBufferPointer(rebasing: bytes[from..<position])),
                            for: slot, flags: .link)
                        try ring.enqueue(
                            .sendZeroCopy(
                                fd: sender,
                                bytes: UnsafeRawBufferPointer(rebasing: piece[offset..<offset + blockBytes])),
                            for: slot, flags: isLast ? [] : .link)
                        expected += position - from + blockBytes
                        from = position
                    }
                    var transferred = 0
                    var notificationsDue = 0
                    var completions = 0
                    while completions < 2 * positions.count || notificationsDue > 0 {
                        try ring.submitAndWait(minimumCompletions: 1)
                        ring.drain { completion in
                            if completion.isNotification {
                                notificationsDue -= 1
                                return
                            }
                            completions += 1
                            precondition(completion.result > 0, "send failed: \(completion.result)")
                            transferred += Int(completion.result)
                            if completion.hasMore { notificationsDue += 1 }
                        }
                    }
                    precondition(transferred == expected, "a short send broke the chain")
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
