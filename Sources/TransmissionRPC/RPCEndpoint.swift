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

    /// The response to `request`, its body written into `storage`'s memory (emptied first) if given:
    /// a server that hands back the memory of the last large reply saves writing megabytes into fresh
    /// pages.
    public func respond(to request: RPCHTTPRequest, reusing storage: [UInt8] = []) async -> RPCHTTPResponse {
        if let refusal = gatekeeper.refusal(for: request) { return refusal }
        let reply = await answer(toBody: request.body, written: true)
        // The keys in order: arguments, result, tag.
        var writer = JSONWriter(reusing: storage)
        writer.append(#"{"arguments":"#)
        reply.arguments.write(into: &writer)
        writer.append(#","result":"#)
        writer.writeString(reply.result)
        if let tag = reply.tag {
            writer.append(#","tag":"#)
            writer.write(tag)
        }
        writer.append(byte: UInt8(ascii: "}"))
        return .json(writer.bytes)
    }

    /// The JSON reply to a request body. It always has `result` and `arguments`, and echoes `tag`
    /// whenever the body has one, since transmission-remote picks how to print a reply by its tag.
    public func reply(toBody body: [UInt8]) async -> JSONValue {
        let reply = await answer(toBody: body, written: false)
        var object: [String: JSONValue] = ["result": .string(reply.result)]
        switch reply.arguments {
        case .object(let arguments): object["arguments"] = .object(arguments)
        case .torrents(let list): object["arguments"] = .object(list.value)
        }
        if let tag = reply.tag { object["tag"] = tag }
        return .object(object)
    }

    private func answer(
        toBody body: [UInt8], written: Bool
    ) async -> (tag: JSONValue?, result: String, arguments: RPCDispatcher.ReplyArguments) {
        // Transmission treats a body that is not JSON like one without a method.
        let call = JSONValue(parsing: body)?.objectValue ?? [:]
        let tag = call["tag"]
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
            let replyArguments = try await dispatcher.arguments(for: request, written: written)
            callAnswered(method, true)
            return (tag, "success", replyArguments)
        } catch {
            callAnswered(method, false)
            return (tag, error.message, .object([:]))
        }
    }
}
