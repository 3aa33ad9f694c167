import Foundation

/// The HTTP checks every request passes before its body is read as an RPC call, in Transmission's order:
/// client address (403), credentials (401), path (404), host name (421), CSRF session id (409), method
/// (405), body size (413).
public struct Gatekeeper: Sendable {
    /// The header carrying the CSRF token both ways.
    public static let sessionIDHeader = "X-Transmission-Session-Id"

    public var policy: AccessPolicy
    /// The token a client learns from a 409 and must send back on every later request.
    public var sessionID: String

    public init(policy: AccessPolicy, sessionID: String = Gatekeeper.randomSessionID()) {
        self.policy = policy
        self.sessionID = sessionID
    }

    /// A fresh token of 48 letters and digits, as long as Transmission's.
    public static func randomSessionID() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<48).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// The response refusing `request`, or nil when it may go on to the RPC.
    public func refusal(for request: RPCHTTPRequest) -> RPCHTTPResponse? {
        if let refusal = addressRefusal(for: request) { return refusal }
        if let credentials = policy.credentials,
            !Self.authorization(request.headers["Authorization"], matches: credentials)
        {
            var response = RPCHTTPResponse.plainText(
                status: 401, reason: "Unauthorized", explanation: "a user name and password are required")
            response.headers.append(name: "WWW-Authenticate", value: #"Basic realm="Transmission""#)
            return response
        }
        guard request.path.hasPrefix(policy.rpcPath) else {
            return .plainText(
                status: 404, reason: "Not Found", explanation: "the RPC is at \(policy.rpcPath)")
        }
        // A password already defeats DNS rebinding, so Transmission skips the host check when one is set.
        if policy.credentials == nil, let whitelist = policy.hostWhitelist,
            !Self.isAllowed(host: request.headers["Host"], by: whitelist)
        {
            return .plainText(
                status: 421, reason: "Misdirected Request",
                explanation: "this host name is not in the RPC host whitelist (rpc-host-whitelist)")
        }
        guard request.headers[Self.sessionIDHeader] == sessionID else {
            var response = RPCHTTPResponse.plainText(
                status: 409, reason: "Conflict",
                explanation: "resend the request with the \(Self.sessionIDHeader) header of this response")
            response.headers.append(name: Self.sessionIDHeader, value: sessionID)
            return response
        }
        guard request.method == "POST" else {
            var response = RPCHTTPResponse.plainText(
                status: 405, reason: "Method Not Allowed", explanation: "RPC calls are POSTed")
            response.headers.append(name: "Allow", value: "POST")
            return response
        }
        guard request.body.count <= policy.maximumBodyBytes else {
            return .plainText(
                status: 413, reason: "Content Too Large",
                explanation: "the request body is over \(policy.maximumBodyBytes) bytes")
        }
        return nil
    }

    /// The 403 for a client outside the address whitelist, or nil: the one check that also guards what
    /// the server shows beside the RPC without a password (`/metrics`).
    public func addressRefusal(for request: RPCHTTPRequest) -> RPCHTTPResponse? {
        guard let whitelist = policy.addressWhitelist,
            !isAllowed(address: request.remoteAddress, by: whitelist)
        else { return nil }
        return .plainText(
            status: 403, reason: "Forbidden",
            explanation: "this address is not in the RPC whitelist (rpc-whitelist)")
    }

    private func isAllowed(address: String, by whitelist: [WildcardPattern]) -> Bool {
        let candidates = Set([address, IPAddressLiteral.unmappingIPv4(address)])
        return whitelist.contains { pattern in candidates.contains { pattern.matches($0) } }
    }

    /// Whether a `Host` header names an IP literal, localhost or a whitelisted name; a missing header fails.
    public static func isAllowed(host header: String?, by whitelist: [WildcardPattern]) -> Bool {
        guard let header else { return false }
        let name: Substring
        if header.hasPrefix("[") {
            guard let close = header.firstIndex(of: "]") else { return false }
            name = header[header.index(after: header.startIndex)..<close]
        } else if IPAddressLiteral.isIPv6(header) {
            name = Substring(header)
        } else {
            name = header.prefix { $0 != ":" }
        }
        if IPAddressLiteral.isValid(name) { return true }
        let lowered = name.lowercased()
        if lowered == "localhost" || lowered == "localhost." { return true }
        return whitelist.contains { $0.matches(lowered) }
    }

    /// Whether an `Authorization` header carries exactly these Basic credentials.
    static func authorization(_ header: String?, matches credentials: AccessPolicy.Credentials) -> Bool {
        guard let header else { return false }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let decoded = Data(base64Encoded: String(parts[1].trimmingCharacters(in: .whitespaces)))
        else { return false }
        let expected = Array("\(credentials.username):\(credentials.password)".utf8)
        return constantTimeEqual(Array(decoded), expected)
    }

    /// Compares without an early exit, so response timing does not reveal how much of a password matched.
    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
