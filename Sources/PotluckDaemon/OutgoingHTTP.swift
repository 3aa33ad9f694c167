import OutboundHTTP
import Tracker
import TransmissionRPC

/// What the daemon's few requests of its own (a `torrent-add` URL, `port-test`) share: http and https
/// only.
enum OutgoingHTTP {
    /// `text` as an http or https URL; otherwise `refusal` is thrown.
    static func url(_ text: String, refusal: @autoclosure () -> String) throws -> TrackerURL {
        guard let url = try? TrackerURL(text), url.scheme != .udp else { throw RPCFailure(refusal()) }
        return url
    }
}
