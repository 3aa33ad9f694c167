import Buffers
import Glibc
import Hashing
import Metainfo
import Storage
import Testing
import TorrentModel
import URing

/// A temporary directory, removed with its contents when the test ends.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/potluck-storage-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    deinit {
        _ = system("rm -rf '\(path)'")
    }

    func subdirectory(_ name: String) -> String {
        let sub = path + "/" + name
        mkdir(sub, 0o755)
        return sub
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a failure replays.
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        guard count > 0 else { break }
        bytes += chunk[..<count]
    }
    return bytes
}

func writeFile(_ path: String, _ bytes: [UInt8], at offset: Int = 0, truncate: Bool = true) {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
    precondition(fd >= 0, "test could not open \(path)")
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
    precondition(written == bytes.count, "test could not write \(path)")
}

func exists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}

/// A torrent built in memory with known contents.
struct TestTorrent {
    let metainfo: Metainfo
    /// The whole piece address space: files in order, padding as zeros.
    let payload: [UInt8]

    var layout: FileLayout { metainfo.layout }

    /// Builds a torrent over `files` (paths relative to the torrent's folder `name`; a single file
    /// named `name` makes a single-file torrent). `padding` entries become BEP 47 padding files (v1).
    init(
        name: String = "t", files: [(path: [String], content: [UInt8])], pieceLength: Int,
        format: TorrentBuilder.Format = .v1, paddingAfter: [Int: Int64] = [:]
    ) throws {
        var inputs: [TorrentBuilder.File] = []
        var contents: [[String]: [UInt8]] = [:]
        for (index, file) in files.enumerated() {
            var input = TorrentBuilder.File(path: file.path, length: Int64(file.content.count))
            if format != .v1 && !file.content.isEmpty {
                let blocks = MerkleTree.blockHashes(of: file.content)
                input.piecesRoot = MerkleTree.fileRoot(blockHashes: blocks)
                if file.content.count > pieceLength {
                    input.pieceLayer = MerkleTree.pieceLayer(blockHashes: blocks, pieceLength: pieceLength)
                }
            }
            inputs.append(input)
            contents[file.path] = file.content
            if let gap = paddingAfter[index] {
                inputs.append(
                    TorrentBuilder.File(path: [".pad", String(gap)], length: gap, attributes: .padding))
            }
        }
        var builder = TorrentBuilder(name: name, files: inputs, pieceLength: pieceLength, format: format)
        var v1Payload: [UInt8] = []
        for file in try builder.payloadFiles() {
            v1Payload +=
                file.attributes.contains(.padding)
                ? [UInt8](repeating: 0, count: Int(file.length)) : contents[file.path] ?? []
        }
        if format != .v2 {
            builder.pieceHashesV1 = stride(from: 0, to: v1Payload.count, by: pieceLength).map {
                SHA1.hash(v1Payload[$0..<min($0 + pieceLength, v1Payload.count)])
            }
        }
        metainfo = try Metainfo(bytes: builder.build())
        // The layout's own padding (v2 alignment included) decides the address space.
        var payload: [UInt8] = []
        let isSingleFile = files.count == 1 && files[0].path == [name]
        for entry in metainfo.files {
            if entry.isPadding {
                payload += [UInt8](repeating: 0, count: Int(entry.length))
            } else {
                payload += contents[isSingleFile ? entry.path : Array(entry.path.dropFirst())] ?? []
            }
        }
        self.payload = payload
    }

    func bytes(of piece: PieceIndex) -> ArraySlice<UInt8> {
        let start = Int(metainfo.geometry.offset(of: piece))
        return payload[start..<start + metainfo.geometry.length(of: piece)]
    }
}

/// Runs a ring for a store (and optionally a recheck) until a condition holds, bounded in time so a
/// broken store fails its test instead of hanging it.
final class Reactor {
    let ring: Ring
    var storeEvents: [StorageEvent] = []
    var recheckEvents: [RecheckEvent] = []
    /// Replaces a completion before the store sees it (fault injection); nil passes it unchanged.
    var intercept: ((Completion) -> Completion)?
    /// Called after every completion handled (for invariants that must hold at all times).
    var afterEach: (() -> Void)?

    init(options: RingOptions = RingOptions()) throws {
        ring = try Ring(options: options)
    }

    func run(
        store: PieceStore? = nil, recheck: Recheck? = nil, hashPool: HashPool? = nil, pool: BufferPool? = nil,
        timeout: Duration = .seconds(20), until done: () -> Bool
    ) throws {
        let deadline = ContinuousClock.now + timeout
        while !done() {
            guard ContinuousClock.now < deadline else { throw ReactorError.timedOut }
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(50))
            ring.drain { completion in
                let owner = completion.slot.owner
                if let store, owner == store.owner {
                    store.handle(intercept?(completion) ?? completion, into: &storeEvents)
                } else if let recheck, owner == recheck.owner {
                    recheck.handle(completion, into: &recheckEvents)
                } else {
                    Issue.record("a completion with an unknown owner \(owner)")
                }
                afterEach?()
            }
            if let hashPool, let pool, let recheck {
                hashPool.drain(into: pool) { recheck.handle($0, into: &recheckEvents) }
            }
        }
    }

    /// Runs until `count` store events arrived.
    func runStore(_ store: PieceStore, events count: Int) throws {
        try run(store: store) { storeEvents.count >= count }
    }
}

enum ReactorError: Error {
    case timedOut
}

/// Ring set-ups the I/O tests run under: every feature, and none (the fallback paths).
let ringOptionSets: [RingOptions] = [RingOptions(), RingOptions(disabledFeatures: .all)]

/// Digests stand in for large byte arrays in expectations, so a failure prints 20 bytes, not a MiB.
func digest(_ bytes: some Sequence<UInt8>) -> SHA1Digest { SHA1.hash(Array(bytes)) }

func fileDigest(_ path: String) -> SHA1Digest? { readFile(path).map(digest) }
