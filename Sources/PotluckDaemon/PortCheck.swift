import OutboundHTTP
import Tracker
import TransmissionRPC

/// `port-test` as Transmission answers it: an outside service tries to reach our peer port and says so.
/// A GET of the URL with `{port}` replaced by the port; the body is `1` (reachable) or `0` (not).
public enum PortCheck {
    /// The service Transmission's own daemon asks.
    public static let defaultURL = "https://portcheck.transmissionbt.com/{port}"
    static let timeoutSeconds = 15.0

    static func isOpen(port: Int, template: String) async throws -> Bool {
        let text = template.replacing("{port}", with: String(port))
        let url = try OutgoingHTTP.url(text, refusal: "port-test: \(text) is not an http or https URL")
        let response: HTTPResponse
        do {
            response = try await OutboundHTTP.send(.init(url: url), timeoutSeconds: timeoutSeconds)
        } catch {
            throw RPCFailure("port-test: \(text): \(error)")
        }
        guard response.statusCode == 200 else {
            throw RPCFailure("port-test: \(text) answered HTTP \(response.statusCode)")
        }
        let body = String(decoding: response.body.prefix(64), as: UTF8.self).filter { !$0.isWhitespace }
        switch body {
        case "1": return true
        case "0": return false
        default: throw RPCFailure("port-test: \(text) answered \(body.debugDescription), not 1 or 0")
        }
    }
}
