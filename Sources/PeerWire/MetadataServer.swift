import TorrentModel

/// BEP 9 serving side for one connection: answers a peer's `ut_metadata` requests from the info
/// dictionary we hold.
///
/// Each answer spends a token from a bucket that holds enough for the whole metadata twice and refills
/// at ``refillPiecesPerSecond``; a request when it is empty, or for a piece past the end, is rejected. So
/// a peer can fetch the metadata at once (and again after a failed check) but cannot make us send it in
/// a loop. Before we have the metadata, BEP 9 asks for every request to be rejected: answer with
/// `MetadataMessage.reject(piece:)` without a server.
public struct MetadataServer: Sendable {
    /// How fast the bucket refills, in pieces per second.
    public static let refillPiecesPerSecond = 4

    /// The bencoded info dictionary.
    public let infoDictionary: [UInt8]
    private let capacity: Int
    private var tokens: Int
    private var lastRefill: Instant?

    /// A server of `infoDictionary`, or nil if it is empty or larger than
    /// `MetadataMessage.maximumMetadataSize`.
    public init?(infoDictionary: [UInt8]) {
        guard !infoDictionary.isEmpty, infoDictionary.count <= MetadataMessage.maximumMetadataSize else {
            return nil
        }
        self.infoDictionary = infoDictionary
        capacity = 2 * MetadataMessage.pieceCount(metadataSize: infoDictionary.count)
        tokens = capacity
    }

    /// The `metadata_size` to put in our extension handshake.
    public var metadataSize: Int { infoDictionary.count }

    /// The answer to a request for `piece`: its data, or a reject when the piece does not exist or the
    /// peer has asked too much.
    public mutating func answer(requestFor piece: Int, now: Instant) -> MetadataMessage {
        refill(now: now)
        guard piece >= 0, piece < MetadataMessage.pieceCount(metadataSize: metadataSize), tokens > 0 else {
            return .reject(piece: piece)
        }
        tokens -= 1
        let range = MetadataMessage.pieceRange(piece: piece, metadataSize: metadataSize)
        return .data(piece: piece, totalSize: metadataSize, payload: Array(infoDictionary[range]))
    }

    /// Adds the tokens earned since the last refill; the time a partial token took is kept for the next.
    private mutating func refill(now: Instant) {
        guard let last = lastRefill else {
            lastRefill = now
            return
        }
        let perToken = 1_000_000_000 / UInt64(Self.refillPiecesPerSecond)
        let earned = now.nanoseconds(since: last) / perToken
        guard earned > 0 else { return }
        tokens = Int(min(UInt64(capacity), UInt64(tokens) + earned))
        lastRefill = last.advanced(byNanoseconds: earned * perToken)
    }
}
