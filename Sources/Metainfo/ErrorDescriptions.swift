import Bencode

extension MetainfoError: CustomStringConvertible {
    /// A sentence a user can act on: what is wrong, and where.
    public var description: String {
        switch self {
        case .bencode(let error): "malformed bencode: \(error)"
        case .missingField(let field): "the field '\(field)' is missing"
        case .wrongType(let field, let expected): "the field '\(field)' should be \(expected)"
        case .conflictingFields(let a, let b): "the fields '\(a)' and '\(b)' cannot both be present"
        case .invalidUTF8(let field): "the field '\(field)' is not valid UTF-8"
        case .unsupportedMetaVersion(let version): "meta version \(version) is not supported"
        case .invalidPieceLength(let length):
            "the piece length \(length) is not a power of two between 16 KiB and the limit"
        case .invalidPiecesLength(let count): "'pieces' is \(count) bytes, not a multiple of 20"
        case .pieceCountMismatch(let expected, let actual):
            "the torrent's size needs \(expected) piece hashes but it has \(actual)"
        case .invalidFileLength(let path, let length):
            "the file \(Self.show(path)) has an invalid length \(length)"
        case .totalLengthOverflow: "the file lengths add up to more than 2^63 bytes"
        case .emptyTorrent: "the torrent describes no data"
        case .tooManyPieces(let count, let limit): "\(count) pieces is more than the limit of \(limit)"
        case .tooManyFiles(let limit): "more files than the limit of \(limit)"
        case .unsafePath(let field, let path, let reason):
            "unsafe path \(Self.show(path)) in '\(field)': \(Self.explain(reason))"
        case .invalidFileTree(let path, let reason):
            "the file tree at \(Self.show(path)) is invalid: \(reason)"
        case .missingPieceLayer(let path): "the file \(Self.show(path)) has no piece layer"
        case .invalidPieceLayerLength(let path, let count, let expected):
            "the piece layer of \(Self.show(path)) is \(count) bytes, expected \(expected)"
        case .pieceLayerRootMismatch(let path):
            "the piece layer of \(Self.show(path)) does not hash to its pieces root"
        case .hybridMismatch(let problem): "the v1 and v2 parts of this hybrid torrent disagree: \(problem)"
        case .invalidBuilderInput(let reason): "cannot build the torrent: \(reason)"
        }
    }

    private static func show(_ path: [String]) -> String {
        "'" + path.joined(separator: "/") + "'"
    }

    private static func explain(_ problem: PathProblem) -> String {
        switch problem {
        case .empty: "it is empty"
        case .emptyComponent: "it has an empty component"
        case .currentDirectory: "it has a '.' component"
        case .parentDirectory: "it has a '..' component, which would leave the download folder"
        case .absolute: "it is absolute"
        case .containsSlash: "a component contains '/'"
        case .containsNUL: "a component contains a NUL byte"
        case .componentTooLong(let count): "a component is \(count) bytes, longer than 255"
        case .invalidUTF8: "a component is not valid UTF-8"
        case .tooManyComponents(let count): "it has \(count) components, more than the limit"
        case .conflictsWithAnotherFile: "it collides with another file's path"
        }
    }
}

extension MagnetError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .notAMagnetLink: "it does not start with 'magnet:?'"
        case .missingInfoHash: "it has no xt=urn:btih: or xt=urn:btmh: infohash"
        case .invalidInfoHash(let value):
            "'\(value)' is not a valid infohash (40 hex, 32 base32, or a SHA-256 multihash)"
        case .conflictingInfoHashes: "it gives two different infohashes of the same kind"
        case .invalidPercentEncoding(let value): "'\(value)' has a '%' not followed by two hex digits"
        case .invalidUTF8(let parameter): "the parameter '\(parameter)' is not valid UTF-8"
        case .invalidPeerAddress(let value): "'\(value)' is not a peer address (host:port)"
        case .invalidSelectOnly(let value): "'\(value)' is not a list of file indices and ranges"
        case .malformedParameter(let value): "'\(value)' is not a name=value parameter"
        }
    }
}
