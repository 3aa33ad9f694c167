// libFuzzer harness for the metainfo parser and magnet links. Built by run.sh, not by SwiftPM.
import Metainfo
import TorrentModel

/// Parses arbitrary bytes as a .torrent file and, if accepted, exercises everything the engine will
/// call on it; also parses the bytes as a magnet link. None of it may trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func metainfoFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let text = String(validating: bytes, as: UTF8.self), let link = try? MagnetLink(parsing: text) {
        // A link we produce must parse back to the same link.
        precondition((try? MagnetLink(parsing: link.uri)) == link, "magnet link did not round-trip")
    }
    guard let torrent = try? Metainfo(bytes: bytes) else { return 0 }
    _ = torrent.magnetLink.uri
    _ = torrent.wireInfoHash
    for piece in 0..<min(torrent.pieceCount, 4096) {
        let index = PieceIndex(piece)
        _ = torrent.pieceHash(index)
        _ = torrent.v2PieceHash(index)
        let spans = torrent.layout.spans(of: index)
        let covered = spans.reduce(0) { $0 + $1.length }
        precondition(covered == torrent.geometry.length(of: index), "spans do not cover the piece")
    }
    for index in torrent.files.indices.prefix(4096) {
        _ = torrent.pieceLayer(ofFile: index)
        _ = torrent.layout.pieceRange(ofFile: index)
    }
    return 0
}
