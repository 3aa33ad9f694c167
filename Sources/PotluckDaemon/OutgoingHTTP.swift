import Foundation
import TransmissionRPC

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What the daemon's few requests of its own (a `torrent-add` URL, `port-test`) share: http and https
/// only, and a session that keeps nothing and gives up after `timeoutSeconds`.
enum OutgoingHTTP {
    /// `text` as an http or https URL; otherwise `refusal` is thrown.
    static func url(_ text: String, refusal: @autoclosure () -> String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
            ["http", "https"].contains(scheme)
        else { throw RPCFailure(refusal()) }
        return url
    }

    static func configuration(timeoutSeconds: Double) -> URLSessionConfiguration {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeoutSeconds
        configuration.timeoutIntervalForResource = timeoutSeconds
        return configuration
    }
}
