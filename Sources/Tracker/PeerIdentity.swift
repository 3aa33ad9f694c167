import TorrentModel

/// Our peer id and tracker key for one session.
public enum PeerIdentity {
    /// Potluck's Azureus-style client prefix: `-`, client code `PO`, version `0001`, `-`.
    public static let clientPrefix = "-PO0001-"

    /// A peer id: the 8-byte `prefix` followed by 12 random bytes. The prefix lets trackers and peers
    /// recognise the client; the random part keeps ids of different sessions apart.
    ///
    /// `prefix` must be exactly 8 ASCII bytes (a programmer error otherwise).
    public static func makePeerID(
        prefix: String = clientPrefix, using random: inout some RandomNumberGenerator
    )
        -> PeerID
    {
        let prefixBytes = Array(prefix.utf8)
        precondition(prefixBytes.count == 8, "a peer id prefix is 8 bytes, got \(prefixBytes.count)")
        var bytes = prefixBytes
        for _ in 0..<12 { bytes.append(UInt8.random(in: 0...255, using: &random)) }
        guard let id = PeerID(bytes) else { preconditionFailure("20 bytes always make a peer id") }
        return id
    }

    /// A random `key` (BEP 3's optional announce parameter; BEP 15's key field). Send the same key to a
    /// tracker over IPv4 and IPv6 so it can tell both announces come from one client.
    public static func makeKey(using random: inout some RandomNumberGenerator) -> UInt32 {
        UInt32.random(in: 0...UInt32.max, using: &random)
    }
}
