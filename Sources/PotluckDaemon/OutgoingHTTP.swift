import Tracker
import TransmissionRPC

/// What the daemon's few requests of its own (a `torrent-add` URL, `port-test`) share: http and https
/// only.
enum OutgoingHTTP {
    /// `text` as an http or https URL: another scheme throws `refusal`, an http URL that cannot be
    /// sent (a space in it, say) throws why.
    static func url(_ text: String, refusal: @autoclosure () -> String) throws -> TrackerURL {
        let url: TrackerURL
        do {
            url = try TrackerURL(text)
        } catch .invalidURL(_, .unsupportedScheme) {
            throw RPCFailure(refusal())
        } catch {
            throw RPCFailure("\(text.prefix(200)) is not a URL that can be fetched: \(error)")
        }
        guard url.scheme != .udp else { throw RPCFailure(refusal()) }
        return url
    }
}
