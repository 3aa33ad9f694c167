/// The whole RPC for one HTTP server: gatekeeping, decoding, dispatch and encoding.
///
/// The server hands over each complete request and writes back the response; nothing here touches
/// sockets or clocks.
public struct RPCEndpoint: Sendable {
    public var gatekeeper: Gatekeeper
    public var dispatcher: RPCDispatcher
    /// Told of every call answered: its method (nil when the call named no known method or its
    /// arguments did not decode) and whether it succeeded. For monitoring; it must not block.
    public var callAnswered: @Sendable (_ method: String?, _ succeeded: Bool) -> Void = { _, _ in }

    public init(
        policy: AccessPolicy, backend: any TransmissionBackend, identity: ServerIdentity,
        sessionID: String = Gatekeeper.randomSessionID()
    ) {
        gatekeeper = Gatekeeper(policy: policy, sessionID: sessionID)
        dispatcher = RPCDispatcher(backend: backend, identity: identity, sessionID: sessionID)
    }

    public func respond(to request: RPCHTTPRequest) async -> RPCHTTPResponse {
        if let refusal = gatekeeper.refusal(for: request) { return refusal }
        return .json(await reply(toBody: request.body))
    }

    /// The JSON reply to a request body. It always has `result` and `arguments`, and echoes `tag`
    /// whenever the body has one, since transmission-remote picks how to print a reply by its tag.
    public func reply(toBody body: [UInt8]) async -> JSONValue {
        // Transmission treats a body that is not JSON like one without a method.
        let call = JSONValue(parsing: body)?.objectValue ?? [:]
        var reply: [String: JSONValue] = [:]
        if let tag = call["tag"] { reply["tag"] = tag }
        var method: String?
        do throws(RPCFailure) {
            guard let name = call["method"]?.stringValue else { throw RPCFailure("no method name") }
            let arguments: [String: JSONValue]
            switch call["arguments"] {
            case nil, .null: arguments = [:]
            case .object(let object): arguments = object
            default: throw RPCFailure("'arguments' must be an object")
            }
            let request = try RPCRequest(method: name, arguments: arguments)
            method = request.methodName
            reply["arguments"] = .object(try await dispatcher.reply(to: request))
            reply["result"] = .string("success")
            callAnswered(method, true)
        } catch {
            reply["arguments"] = .object([:])
            reply["result"] = .string(error.message)
            callAnswered(method, false)
        }
        return .object(reply)
    }
}
