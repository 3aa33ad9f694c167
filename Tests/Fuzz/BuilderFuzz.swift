// libFuzzer harness checking TorrentBuilder against Metainfo. Built by run.sh, not by SwiftPM.
import Hashing
import Metainfo
import TorrentModel

/// Reads the fuzz input as a torrent description (format, piece length, files with raw path bytes and
/// lengths), builds it with fake but self-consistent hashes, and requires that whatever the builder
/// accepts the parser accepts too, with the same files. The builder and the parser must agree on
/// which paths are safe, on padding, and on v2 piece layers.
@_cdecl("LLVMFuzzerTestOneInput")
public func builderFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    let formats: [TorrentBuilder.Format] = [.v1, .v2, .hybrid]
    let format = formats[Int(input.byte() % 3)]
    let pieceLength = 16384 << Int(input.byte() % 4)
    let fileCount = 1 + Int(input.byte() % 6)
    var files: [TorrentBuilder.File] = []
    for fileIndex in 0..<fileCount {
        let scale: Int64 = input.byte() % 4 == 0 ? 1 : 17
        let length = Int64(input.byte()) << 8 | Int64(input.byte())
        var path: [String] = []
        for _ in 0..<(1 + Int(input.byte() % 3)) {
            path.append(String(decoding: input.bytes(Int(input.byte() % 6)), as: UTF8.self))
        }
        var file = TorrentBuilder.File(path: path, length: length * scale)
        if format != .v1 {
            let blockCount = Int((file.length + 16383) / 16384)
            let blocks = (0..<blockCount).map {
                SHA256.hash([UInt8(fileIndex), UInt8(truncatingIfNeeded: $0)])
            }
            file.piecesRoot = MerkleTree.fileRoot(blockHashes: blocks)
            if file.length > Int64(pieceLength) {
                file.pieceLayer = MerkleTree.pieceLayer(blockHashes: blocks, pieceLength: pieceLength)
            }
        }
        files.append(file)
    }
    var builder = TorrentBuilder(name: "n", files: files, pieceLength: pieceLength, format: format)
    guard let payload = try? builder.payloadFiles() else { return 0 }
    let total = payload.reduce(Int64(0)) { $0 + $1.length }
    let pieceCount = Int((total + Int64(pieceLength) - 1) / Int64(pieceLength))
    builder.pieceHashesV1 = (0..<pieceCount).map { SHA1.hash([UInt8(truncatingIfNeeded: $0)]) }
    guard let bytes = try? builder.build() else { return 0 }

    let torrent: Metainfo
    do {
        torrent = try Metainfo(bytes: bytes)
    } catch {
        preconditionFailure("the builder produced a torrent the parser rejects: \(error)")
    }
    let parsed = torrent.files.filter { !$0.isPadding }
    let built = payload.filter { !$0.attributes.contains(.padding) }
    precondition(parsed.count == built.count, "file count differs")
    let singleFile = built.count == 1 && built[0].path == ["n"]
    for (a, b) in zip(parsed, built) {
        precondition(a.length == b.length, "length differs")
        precondition(a.path == (singleFile ? b.path : ["n"] + b.path), "path differs")
        precondition(format == .v1 || a.length == 0 || a.piecesRoot == b.piecesRoot, "root differs")
    }
    precondition(torrent.pieceCount == pieceCount || format == .v2, "piece count differs")

    // The rest of the input damages the valid torrent, reaching the checks behind the bencode layer
    // (piece layers, hybrid consistency) that random bytes rarely get to. It may be rejected; it must
    // not trap.
    var damaged = bytes
    while let edit = input.edit(count: damaged.count) {
        damaged[edit.position] = edit.value
    }
    if damaged != bytes, let parsed = try? Metainfo(bytes: damaged) {
        precondition(parsed.files.reduce(0) { $0 + $1.length } == parsed.totalLength, "layout broken")
    }
    return 0
}
