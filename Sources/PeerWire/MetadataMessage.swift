import Bencode

/// A BEP 9 `ut_metadata` message: the payload of an extended message sent with the id the peer gave
/// `ut_metadata` in its extension handshake.
///
/// The metadata (the bencoded info dictionary) travels in pieces of ``pieceLength`` bytes; only the last
/// piece may be shorter. Decoding checks every number against the BEP's rules and ``maximumMetadataSize``
/// and never traps: anything else is a ``DecodingError``.
public enum MetadataMessage: Hashable, Sendable {
    /// Asks for one piece of the metadata (`msg_type` 0).
    case request(piece: Int)
    /// One piece (`msg_type` 1): `payload` is the piece's bytes, which follow the bencoded dictionary.
    /// `totalSize` is the whole metadata's size, the same number as `metadata_size` in the handshake.
    case data(piece: Int, totalSize: Int, payload: [UInt8])
    /// The sender will not send this piece (`msg_type` 2).
    case reject(piece: Int)

    /// The size of every metadata piece but the last.
    public static let pieceLength = 16 * 1024
    /// The largest metadata we accept or serve. Real info dictionaries are rarely above a few MiB (the
    /// piece hashes of a v1 torrent of 1 TiB in 4 MiB pieces take 5 MiB); this bounds what a peer can
    /// make us buffer.
    public static let maximumMetadataSize = 32 << 20
    /// The most pieces a metadata of ``maximumMetadataSize`` has.
    public static let maximumPieceCount = maximumMetadataSize / pieceLength
    /// The longest bencoded dictionary before a data message's piece. Ours is under 60 bytes; the bound
    /// leaves room for keys other clients may add.
    public static let maximumDictionaryBytes = 1024

    /// Why a `ut_metadata` payload was refused.
    public enum DecodingError: Error, Hashable, Sendable {
        /// The dictionary is not valid bencode (or the payload is longer than any valid message).
        case malformed(BencodeError)
        /// The payload does not start with a dictionary.
        case notADictionary
        /// A required integer (`msg_type`, `piece`, or `total_size` in a data message) is absent or not
        /// an integer.
        case missingField(String)
        /// A `msg_type` this BEP does not define. BEP 9 says to ignore such a message, not to disconnect.
        case unknownMessageType(Int64)
        /// A `piece` below zero or beyond the last piece (of `total_size`, or of ``maximumMetadataSize``
        /// for requests and rejects, which carry no size).
        case pieceOutOfRange(piece: Int64, pieceCount: Int)
        /// A `total_size` of zero or above ``maximumMetadataSize``.
        case totalSizeOutOfRange(Int64)
        /// A data message whose piece is not exactly `expected` bytes.
        case wrongPieceLength(piece: Int, length: Int, expected: Int)
        /// Bytes after the dictionary of a request or reject.
        case trailingBytes(count: Int)
    }

    /// The piece the message is about.
    public var piece: Int {
        switch self {
        case .request(let piece), .data(let piece, _, _), .reject(let piece): piece
        }
    }

    /// How many pieces a metadata of `size` bytes has.
    public static func pieceCount(metadataSize size: Int) -> Int {
        (size + pieceLength - 1) / pieceLength
    }

    /// The length of piece `piece` of a metadata of `size` bytes.
    public static func pieceLength(piece: Int, metadataSize size: Int) -> Int {
        min(pieceLength, size - piece * pieceLength)
    }

    /// The byte range piece `piece` covers in a metadata of `size` bytes.
    public static func pieceRange(piece: Int, metadataSize size: Int) -> Range<Int> {
        let start = piece * pieceLength
        return start..<start + pieceLength(piece: piece, metadataSize: size)
    }

    /// Parses an extended message's payload.
    public init(decoding payload: [UInt8]) throws(DecodingError) {
        let (dictionary, dictionaryEnd) = try Self.leadingDictionary(of: payload)
        guard let typeNode = dictionary["msg_type"], let type = typeNode.integer else {
            throw .missingField("msg_type")
        }
        // Before the other fields: a future message type need not have them (BEP 9 asks that one be
        // ignored, which callers do on this error).
        guard (0...2).contains(type) else { throw .unknownMessageType(type) }
        guard let pieceNode = dictionary["piece"], let piece = pieceNode.integer else {
            throw .missingField("piece")
        }
        let trailing = payload.count - dictionaryEnd
        switch type {
        case 0, 2:
            guard piece >= 0, piece < Self.maximumPieceCount else {
                throw .pieceOutOfRange(piece: piece, pieceCount: Self.maximumPieceCount)
            }
            guard trailing == 0 else { throw .trailingBytes(count: trailing) }
            self = type == 0 ? .request(piece: Int(piece)) : .reject(piece: Int(piece))
        case 1:
            guard let sizeNode = dictionary["total_size"], let totalSize = sizeNode.integer else {
                throw .missingField("total_size")
            }
            guard totalSize > 0, totalSize <= Self.maximumMetadataSize else {
                throw .totalSizeOutOfRange(totalSize)
            }
            let pieceCount = Self.pieceCount(metadataSize: Int(totalSize))
            guard piece >= 0, piece < pieceCount else {
                throw .pieceOutOfRange(piece: piece, pieceCount: pieceCount)
            }
            let expected = Self.pieceLength(piece: Int(piece), metadataSize: Int(totalSize))
            guard trailing == expected else {
                throw .wrongPieceLength(piece: Int(piece), length: trailing, expected: expected)
            }
            self = .data(
                piece: Int(piece), totalSize: Int(totalSize), payload: Array(payload[dictionaryEnd...]))
        default:
            throw .unknownMessageType(type)
        }
    }

    /// The dictionary at the start of `payload` and where it ends. The bencode decoder refuses trailing
    /// bytes and says where they start, which is exactly where a data message's piece begins.
    private static func leadingDictionary(
        of payload: [UInt8]
    ) throws(DecodingError) -> (BencodeNode, end: Int) {
        let limits = BencodeLimits(
            maxDepth: 4, maxElementCount: 64, maxInputBytes: maximumDictionaryBytes + pieceLength)
        let document: BencodeDocument
        do {
            document = try BencodeDocument(bytes: payload, limits: limits)
        } catch .trailingBytes(let offset) {
            guard offset <= maximumDictionaryBytes else {
                throw .malformed(.inputTooLarge(byteCount: offset, limit: maximumDictionaryBytes))
            }
            do {
                document = try BencodeDocument(bytes: Array(payload[..<offset]), limits: limits)
            } catch {
                throw .malformed(error)
            }
        } catch {
            throw .malformed(error)
        }
        guard document.root.kind == .dictionary else { throw .notADictionary }
        return (document.root, document.bytes.count)
    }

    /// The payload to send as the extended message: the canonical dictionary, then a data message's piece.
    public func encoded() -> [UInt8] {
        var writer = BencodeWriter(reservingCapacity: 64)
        writer.beginDictionary()
        writer.key("msg_type")
        switch self {
        case .request: writer.integer(0)
        case .data: writer.integer(1)
        case .reject: writer.integer(2)
        }
        writer.key("piece")
        writer.integer(Int64(piece))
        guard case .data(_, let totalSize, let payload) = self else {
            writer.end()
            return writer.bytes
        }
        writer.key("total_size")
        writer.integer(Int64(totalSize))
        writer.end()
        return writer.bytes + payload
    }
}
