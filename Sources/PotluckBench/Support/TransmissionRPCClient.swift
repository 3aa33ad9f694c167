import CommandSupport
import Foundation
import OutboundHTTP
import Tracker

/// Transmission's RPC as its remote tools speak it: a JSON POST to /transmission/rpc, repeated once
/// with the X-Transmission-Session-Id that a 409 answer hands out. Blocking, for one thread at a time;
/// each call is timed from the request (its connection included: one per call) until the whole answer
/// has arrived (parsing not included), which is the latency a client sees.
final class TransmissionRPCClient: @unchecked Sendable {
    struct Reply {
        let arguments: [String: Any]
        /// Seconds from sending the request until the last byte of the answer.
        let seconds: Double
        let bytes: Int
    }

    let address: String
    private let endpoint: TrackerURL
    private var sessionID = ""

    /// `address` is HOST:PORT.
    init(address: String) throws {
        self.address = address
        endpoint = try TrackerURL("http://\(address)/transmission/rpc")
    }

    /// Calls `method`; throws when the daemon cannot be reached or answers anything but success.
    func call(_ method: String, _ arguments: [String: Any] = [:], timeoutSeconds: Double = 60) throws -> Reply
    {
        let body = try JSONSerialization.data(withJSONObject: ["method": method, "arguments": arguments])
        var limits = HTTPResponseParser.Limits()
        limits.maxBodyBytes = 1 << 30
        for _ in 0..<2 {
            let request = OutboundHTTP.Request(
                method: "POST", url: endpoint,
                headers: [
                    HTTPHeader(name: "Content-Type", value: "application/json"),
                    HTTPHeader(name: "X-Transmission-Session-Id", value: sessionID),
                ], body: Array(body))
            let began = ContinuousClock.now
            let response: HTTPResponse
            do {
                response = try OutboundHTTP.sendWaiting(
                    request, timeoutSeconds: timeoutSeconds, limits: limits)
            } catch {
                throw ExternalCommand.Failure(description: "\(method) at \(address): \(error)")
            }
            let elapsed = seconds(ContinuousClock.now - began)
            if response.statusCode == 409 {
                sessionID = response.header("X-Transmission-Session-Id") ?? ""
                continue
            }
            guard response.statusCode == 200,
                let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                let result = object["result"] as? String
            else {
                throw ExternalCommand.Failure(
                    description: "\(method) at \(address): HTTP \(response.statusCode)")
            }
            guard result == "success" else {
                throw ExternalCommand.Failure(description: "\(method) at \(address): \(result)")
            }
            return Reply(
                arguments: object["arguments"] as? [String: Any] ?? [:], seconds: elapsed,
                bytes: response.body.count)
        }
        throw ExternalCommand.Failure(description: "\(method) at \(address): no session id after a 409")
    }
}
