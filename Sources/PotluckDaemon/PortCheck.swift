import Foundation
import TransmissionRPC

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `port-test` as Transmission answers it: an outside service tries to reach our peer port and says so.
/// A GET of the URL with `{port}` replaced by the port; the body is `1` (reachable) or `0` (not).
public enum PortCheck {
    /// The service Transmission's own daemon asks.
    public static let defaultURL = "https://portcheck.transmissionbt.com/{port}"
    static let timeoutSeconds = 15.0

    static func isOpen(port: Int, template: String) async throws -> Bool {
        let text = template.replacingOccurrences(of: "{port}", with: String(port))
        let url = try OutgoingHTTP.url(text, refusal: "port-test: \(text) is not an http or https URL")
        let session = URLSession(configuration: OutgoingHTTP.configuration(timeoutSeconds: timeoutSeconds))
        defer { session.finishTasksAndInvalidate() }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(from: url)
        } catch {
            throw RPCFailure("port-test: \(text): \(error.localizedDescription)")
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode, status == 200 else {
            throw RPCFailure(
                "port-test: \(text) answered HTTP \((response as? HTTPURLResponse)?.statusCode ?? 0)")
        }
        let body = String(decoding: data.prefix(64), as: UTF8.self).trimmingCharacters(
            in: .whitespacesAndNewlines)
        switch body {
        case "1": return true
        case "0": return false
        default: throw RPCFailure("port-test: \(text) answered \(body.debugDescription), not 1 or 0")
        }
    }
}
