/// HTTP header fields in arrival order, looked up without regard to case.
public struct HTTPHeaderFields: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)] = []) { self.fields = fields }

    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { (name: $0.0, value: $0.1) }
    }

    /// The first field with this name, if any.
    public subscript(name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public mutating func append(name: String, value: String) { fields.append((name: name, value: value)) }

    public static func == (a: Self, b: Self) -> Bool {
        a.fields.elementsEqual(b.fields) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for field in fields {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }
}

/// An HTTP request as the server hands it over: parsed head, whole body, and the peer's address.
public struct RPCHTTPRequest: Sendable, Hashable {
    /// The request method, such as `POST`.
    public var method: String
    /// The request target; any query string is ignored.
    public var target: String
    public var headers: HTTPHeaderFields
    public var body: [UInt8]
    /// The client's IP address in text form (`192.168.1.20`, `::1`), for the address whitelist.
    public var remoteAddress: String

    public init(
        method: String, target: String, headers: HTTPHeaderFields = [:], body: [UInt8] = [],
        remoteAddress: String
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }

    /// The target without its query string.
    var path: Substring { target.prefix { $0 != "?" } }
}

/// An HTTP response for the server to write: status, headers and a complete body.
public struct RPCHTTPResponse: Sendable, Hashable {
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaderFields
    public var body: [UInt8]

    public init(status: Int, reason: String, headers: HTTPHeaderFields = [:], body: [UInt8] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    /// A status with a short plain-text explanation for people looking at it in a browser or a log.
    static func plainText(status: Int, reason: String, explanation: String) -> RPCHTTPResponse {
        RPCHTTPResponse(
            status: status, reason: reason, headers: ["Content-Type": "text/plain; charset=UTF-8"],
            body: Array("\(status) \(reason): \(explanation)\n".utf8))
    }

    /// A 200 carrying an RPC reply, written as JSON; RPC-level failures travel in its `result`, never in
    /// the status.
    static func json(_ body: [UInt8]) -> RPCHTTPResponse {
        RPCHTTPResponse(
            status: 200, reason: "OK", headers: ["Content-Type": "application/json; charset=UTF-8"],
            body: body)
    }
}
