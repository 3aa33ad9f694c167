import TorrentModel

/// The canonical BEP 6 allowed-fast set: the pieces a peer may request while choked.
///
/// Both sides can compute it, and a peer gets the same set from everyone for a torrent, so it cannot
/// collect a different free set from each. SHA-1 is passed in, because this module does no hashing of
/// its own (the `Hashing` module owns OpenSSL).
public enum AllowedFastSet {
    /// The first `count` pieces of the allowed-fast set of the peer at `peerIPv4` (host byte order, e.g.
    /// `0x7f00_0001` for 127.0.0.1). Fewer when the torrent has fewer pieces.
    ///
    /// - Parameter sha1: the SHA-1 digest (20 bytes) of its argument.
    public static func pieces(
        count: Int, pieceCount: Int, infoHash: InfoHash, peerIPv4: UInt32, sha1: ([UInt8]) -> [UInt8]
    ) -> [PieceIndex] {
        // Without this bound the loop below could never finish: it only ever finds pieceCount indices.
        let wanted = min(max(count, 0), pieceCount)
        var pieces: [PieceIndex] = []
        pieces.reserveCapacity(wanted)
        // The top three octets only, so a peer cannot gain more sets from more addresses on one network.
        var x: [UInt8] = []
        x.appendBigEndian(peerIPv4 & 0xffff_ff00)
        infoHash.withUnsafeBytes { x.append(contentsOf: $0) }
        while pieces.count < wanted {
            x = sha1(x)
            precondition(x.count == 20, "sha1 must return a 20-byte digest")
            var i = 0
            while i < 5 && pieces.count < wanted {
                let j = 4 * i
                let y = UInt32(x[j]) << 24 | UInt32(x[j + 1]) << 16 | UInt32(x[j + 2]) << 8 | UInt32(x[j + 3])
                let index = PieceIndex(y % UInt32(pieceCount))
                if !pieces.contains(index) { pieces.append(index) }
                i += 1
            }
        }
        return pieces
    }
}
