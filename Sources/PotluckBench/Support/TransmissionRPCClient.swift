import CommandSupport
import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Transmission's RPC as its remote tools speak it: a JSON POST to /transmission/rpc, repeated once
/// with the X-Transmission-Session-Id that a 409 answer hands out. Blocking, for one thread at a time;
/// each call is timed from the request until the whole answer has arrived (parsing not included),
/// which is the latency a client sees.
final class TransmissionRPCClient: @unchecked Sendable {
    struct Reply {
        let arguments: [String: Any]
        /// Seconds from sending the request until the last byte of the answer.
        let seconds: Double
        let bytes: Int
    }

    let address: String
    private let endpoint: URL
    private let session: URLSession
    private var sessionID = ""

    /// `address` is HOST:PORT.
    init(address: String) {
        self.address = address
        endpoint = URL(string: "http://\(address)/transmission/rpc")!
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 1
        session = URLSession(configuration: configuration)
    }

    deinit { session.invalidateAndCancel() }

    /// Calls `method`; throws when the daemon cannot be reached or answers anything but success.
    func call(_ method: String, _ arguments: [String: Any] = [:], timeoutSeconds: Double = 60) throws -> Reply
    {
        let body = try JSONSerialization.data(withJSONObject: ["method": method, "arguments": arguments])
        for _ in 0..<2 {
            var request = URLRequest(url: endpoint, timeoutInterval: timeoutSeconds)
            request.httpMethod = "POST"
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue(sessionID, forHTTPHeaderField: "X-Transmission-Session-Id")
            let began = ContinuousClock.now
            let (data, response, error) = perform(request)
            let elapsed = seconds(ContinuousClock.now - began)
            guard let response = response as? HTTPURLResponse, let data else {
                throw ExternalCommand.Failure(
                    description: "\(method) at \(address): \(error.map { "\($0)" } ?? "no answer")")
            }
            if response.statusCode == 409 {
                sessionID = response.value(forHTTPHeaderField: "X-Transmission-Session-Id") ?? ""
                continue
            }
            guard response.statusCode == 200,
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let result = object["result"] as? String
            else {
                throw ExternalCommand.Failure(
                    description: "\(method) at \(address): HTTP \(response.statusCode)")
            }
            guard result == "success" else {
                throw ExternalCommand.Failure(description: "\(method) at \(address): \(result)")
            }
            return Reply(
                arguments: object["arguments"] as? [String: Any] ?? [:], seconds: elapsed, bytes: data.count)
        }
        throw ExternalCommand.Failure(description: "\(method) at \(address): no session id after a 409")
    }

    /// One request, waited for.
    private func perform(_ request: URLRequest) -> (Data?, URLResponse?, (any Error)?) {
        let outcome = Outcome()
        session.dataTask(with: request) { data, response, error in
            outcome.value = (data, response, error)
            outcome.done.signal()
        }.resume()
        outcome.done.wait()
        return outcome.value
    }

    /// Handed from URLSession's queue to the waiting caller; the semaphore orders the accesses.
    private final class Outcome: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        var value: (Data?, URLResponse?, (any Error)?) = (nil, nil, nil)
    }
}
