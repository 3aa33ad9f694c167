import Tracker

/// Where a web seed serves each file of a torrent (BEP 19), and the checks on its URL.
public enum WebSeedURL {
    /// The URL of one file. A single-file torrent's URL is the file itself, unless it ends in `/`, when
    /// the torrent's name is appended. A multi-file torrent's URL is a folder: the name, then the file's
    /// path components follow it. `path` is the file's path as in ``Metainfo/FileEntry``: `[name]` for a
    /// single file, `[name, dir…, file]` otherwise. Components are percent-encoded.
    public static func fileURL(base: String, path: [String], isSingleFile: Bool) -> String {
        if isSingleFile {
            guard base.hasSuffix("/") else { return base }
            return base + path.map(percentEncode).joined(separator: "/")
        }
        let folder = base.hasSuffix("/") ? base : base + "/"
        return folder + path.map(percentEncode).joined(separator: "/")
    }

    /// Parses a seed's URL: `http` or `https` (other schemes are refused with the reason).
    public static func parse(_ text: String) -> Result<TrackerURL, WebSeedURLProblem> {
        let url: TrackerURL
        do {
            url = try TrackerURL(text)
        } catch {
            return .failure(.invalid("\(error)"))
        }
        switch url.scheme {
        case .http, .https: return .success(url)
        case .udp: return .failure(.invalid("not an http URL"))
        }
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters.
    static func percentEncode(_ component: String) -> String {
        var encoded = ""
        for byte in component.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                encoded += "%"
                encoded.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                encoded.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xf)]))
            }
        }
        return encoded
    }

    /// Follows a `Location` answer from `url`, the `redirectsSoFar`-th in a row; at most
    /// ``maxRedirects`` are followed, to `http` or `https` (either way: the pieces' hashes, not the
    /// transport, vouch for the bytes).
    public static func redirect(
        from url: TrackerURL, to location: String, redirectsSoFar: Int
    ) throws(WebSeedError) -> TrackerURL {
        guard redirectsSoFar < maxRedirects else { throw .tooManyRedirects(limit: maxRedirects) }
        let next: TrackerURL
        do {
            next = try url.resolving(location)
        } catch {
            throw .invalidRedirect(location: String(location.prefix(200)), reason: "\(error)")
        }
        guard next.scheme == .http || next.scheme == .https else {
            throw .invalidRedirect(
                location: String(location.prefix(200)), reason: "\(next.scheme.rawValue) is not supported")
        }
        return next
    }

    /// Redirects followed for one request, as most HTTP clients allow.
    public static let maxRedirects = 5
}

/// Why a web seed URL is not used.
public enum WebSeedURLProblem: Error, Hashable, Sendable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let reason): reason
        }
    }
}
