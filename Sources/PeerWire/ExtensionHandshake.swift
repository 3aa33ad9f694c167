import Bencode

/// The BEP 10 extension handshake: the bencoded dictionary sent as extended message 0.
///
/// Every field is optional and unknown keys are ignored, as BEP 10 asks. Values from the peer are
/// bounded: names and the client string are cut to a sane length, `reqq` is clamped, and a handshake
/// that is not a dictionary is an error.
public struct ExtensionHandshake: Hashable, Sendable {
    /// The longest client name (`v`) kept.
    public static let maximumClientNameBytes = 128
    /// The largest `reqq` believed: beyond this a peer cannot mean it.
    public static let maximumRequestQueueLength = 4096

    /// Extension names to the ids the sender wants them sent with (`m`); id 0 means disabled.
    public var extensions: [String: UInt8]
    /// The client's name and version (`v`).
    public var clientName: String?
    /// How many outstanding requests the sender accepts (`reqq`).
    public var requestQueueLength: Int?
    /// The TCP port the sender listens on (`p`).
    public var listenPort: UInt16?
    /// Our address as the sender sees it (`yourip`, 4 or 16 bytes).
    public var yourAddress: [UInt8]?
    /// The size of the info dictionary, for BEP 9 (`metadata_size`); a size of zero or above
    /// `MetadataMessage.maximumMetadataSize` is ignored.
    public var metadataSize: Int?
    /// Whether the sender prefers encrypted connections (`e`, from the MSE/PE convention); BEP 11 passes
    /// it on to other peers in its flags.
    public var prefersEncryption: Bool

    public init(
        extensions: [String: UInt8] = [:], clientName: String? = nil, requestQueueLength: Int? = nil,
        listenPort: UInt16? = nil, yourAddress: [UInt8]? = nil, metadataSize: Int? = nil,
        prefersEncryption: Bool = false
    ) {
        self.extensions = extensions
        self.clientName = clientName
        self.requestQueueLength = requestQueueLength
        self.listenPort = listenPort
        self.yourAddress = yourAddress
        self.metadataSize = metadataSize
        self.prefersEncryption = prefersEncryption
    }

    /// Why a peer's extension handshake was refused.
    public enum DecodingError: Error, Hashable, Sendable {
        case malformed(BencodeError)
        case notADictionary
    }

    /// Parses a peer's handshake payload.
    public init(decoding payload: [UInt8]) throws(DecodingError) {
        let value: BencodeValue
        do {
            value = try BencodeValue(
                decoding: payload,
                limits: BencodeLimits(maxDepth: 4, maxElementCount: 4096, maxInputBytes: 64 * 1024))
        } catch {
            throw .malformed(error)
        }
        guard let dictionary = value.dictionary else { throw .notADictionary }
        self.init()
        if let names = dictionary["m"]?.dictionary {
            for (key, id) in names {
                guard let number = id.integer, number >= 0, number <= 255 else { continue }
                extensions[key.description] = UInt8(number)
            }
        }
        if let name = dictionary["v"]?.bytes { clientName = Self.clientName(decoding: name) }
        if let reqq = dictionary["reqq"]?.integer, reqq > 0 {
            requestQueueLength = Int(min(reqq, Int64(Self.maximumRequestQueueLength)))
        }
        if let port = dictionary["p"]?.integer, port > 0, port <= 65535 { listenPort = UInt16(port) }
        if let address = dictionary["yourip"]?.bytes, address.count == 4 || address.count == 16 {
            yourAddress = address
        }
        if let size = dictionary["metadata_size"]?.integer, size > 0,
            size <= MetadataMessage.maximumMetadataSize
        {
            metadataSize = Int(size)
        }
        prefersEncryption = dictionary["e"]?.integer == 1
    }

    /// The peer's client name, at most `maximumClientNameBytes` of UTF-8. It is cut again after decoding
    /// because each byte that is not UTF-8 becomes a three-byte U+FFFD; cutting at a scalar boundary keeps
    /// the name valid, so our encoding of it decodes to the same name.
    private static func clientName(decoding bytes: [UInt8]) -> String {
        var name = String(decoding: bytes.prefix(maximumClientNameBytes), as: UTF8.self)
        while name.utf8.count > maximumClientNameBytes { name.unicodeScalars.removeLast() }
        return name
    }

    /// The canonical bencoded payload.
    public func encoded() -> [UInt8] {
        var dictionary: [BencodeKey: BencodeValue] = [
            "m": .dictionary(
                Dictionary(
                    uniqueKeysWithValues: extensions.map { (BencodeKey($0.key), .integer(Int64($0.value))) }))
        ]
        if let clientName { dictionary["v"] = .string(clientName) }
        if let requestQueueLength { dictionary["reqq"] = .integer(Int64(requestQueueLength)) }
        if let listenPort { dictionary["p"] = .integer(Int64(listenPort)) }
        if let yourAddress { dictionary["yourip"] = .bytes(yourAddress) }
        if let metadataSize { dictionary["metadata_size"] = .integer(Int64(metadataSize)) }
        if prefersEncryption { dictionary["e"] = .integer(1) }
        return BencodeValue.dictionary(dictionary).encoded()
    }
}
