import OutboundHTTP
import Tracker
import TransmissionRPC

/// Fetches what a `torrent-add` URL names, as indexers (Jackett, Prowlarr) hand them to Sonarr and
/// Radarr: a .torrent file, or a redirect to a magnet link. Bounded: at most `maximumBytes`, at most
/// `timeoutSeconds` per request, http and https only, up to `maximumRedirects` redirects followed (a
/// redirect to `magnet:` ends the fetch with that link).
enum TorrentURLFetcher {
    enum Fetched: Equatable {
        case metainfo([UInt8])
        case magnet(String)
    }

    static let maximumBytes = 16 << 20
    static let timeoutSeconds = 30.0
    static let maximumRedirects = 5

    /// `cookies`: torrent-add's, sent as the `Cookie` header (private trackers' indexers ask for a
    /// login), to the URL's own host only: a redirect elsewhere does not get them.
    static func fetch(_ text: String, cookies: String? = nil) async throws -> Fetched {
        var url = try OutgoingHTTP.url(
            text, refusal: "cannot add \(text): only http and https URLs are fetched")
        let origin = (url.host, url.port)
        var limits = HTTPResponseParser.Limits()
        limits.maxBodyBytes = maximumBytes
        for _ in 0...maximumRedirects {
            let response: HTTPResponse
            let headers =
                cookies.map { cookies in
                    (url.host, url.port) == origin ? [HTTPHeader(name: "Cookie", value: cookies)] : []
                } ?? []
            do {
                response = try await OutboundHTTP.send(
                    .init(url: url, headers: headers), timeoutSeconds: timeoutSeconds, limits: limits)
            } catch .response(.http(.bodyTooLarge)) {
                throw RPCFailure("\(text) sent more than \(maximumBytes >> 20) MiB")
            } catch {
                throw RPCFailure("cannot fetch \(text): \(error)")
            }
            guard response.isRedirect else {
                guard (200..<300).contains(response.statusCode) else {
                    throw RPCFailure("cannot fetch \(text): HTTP \(response.statusCode)")
                }
                return .metainfo(response.body)
            }
            guard let location = response.header("Location"), !location.isEmpty else {
                throw RPCFailure("cannot fetch \(text): HTTP \(response.statusCode) without a Location")
            }
            if location.lowercased().hasPrefix("magnet:") { return .magnet(location) }
            do {
                url = try url.resolving(location)
            } catch {
                throw RPCFailure("cannot fetch \(text): a redirect to \(location): \(error)")
            }
            guard url.scheme != .udp else {
                throw RPCFailure("cannot fetch \(text): a redirect to \(location), not http or https")
            }
        }
        throw RPCFailure("cannot fetch \(text): more than \(maximumRedirects) redirects")
    }
}
