internal import HTTPTypes
internal import Hummingbird
internal import Logging
internal import NIOCore
import TransmissionRPC

/// What the HTTP server knows of each request besides the request itself: the client's address, for
/// the RPC's address whitelist.
struct DaemonRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: String

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? ""
    }
}

/// The daemon's HTTP side: every request under `/transmission/` goes to the RPC endpoint, which does
/// the gatekeeping (whitelists, password, the 409 session-id handshake); the Transmission web client
/// is served from `/transmission/web/` behind the same whitelists and password; `/` leads there.
/// `/metrics` is served to the whitelisted addresses without password or session id, as Prometheus
/// scrapes: it tells how much, never what.
struct RPCResponder: HTTPResponder {
    typealias Context = DaemonRequestContext

    static let webPath = "/transmission/web/"
    static let metricsPath = "/metrics"

    /// Its access policy is replaced by the live one at each request.
    let endpoint: RPCEndpoint
    let live: LiveSettings
    let metrics: DaemonMetrics
    /// The web client's files, when its folder exists.
    let webClient: FileMiddleware<DaemonRequestContext, LocalFileSystem>?

    init(
        endpoint: RPCEndpoint, live: LiveSettings, metrics: DaemonMetrics, webFolder: String?, logger: Logger
    ) {
        self.endpoint = endpoint
        self.live = live
        self.metrics = metrics
        webClient = webFolder.map {
            FileMiddleware($0, urlBasePath: "/transmission/web", searchForIndexHtml: true, logger: logger)
        }
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        var endpoint = self.endpoint
        endpoint.gatekeeper.policy = live.policy
        let path = request.uri.path
        if webClient != nil, ["/", "/transmission", "/transmission/", "/transmission/web"].contains(path) {
            return Response(status: .movedPermanently, headers: [.location: Self.webPath])
        }
        var headers = HTTPHeaderFields(request.headers.map { (name: $0.name.rawName, value: $0.value) })
        // HTTP/1's Host header arrives as the request's authority; the host whitelist reads it.
        if let authority = request.head.authority { headers.append(name: "Host", value: authority) }
        var call = RPCHTTPRequest(
            method: request.method.rawValue, target: request.uri.description, headers: headers,
            remoteAddress: context.remoteAddress)
        if path == Self.metricsPath {
            if let refusal = endpoint.gatekeeper.addressRefusal(for: call) { return Self.response(refusal) }
            return Response(
                status: .ok, headers: [.contentType: DaemonMetrics.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        if let webClient, path.hasPrefix(Self.webPath) {
            // The RPC's gatekeeper passes the address and the password before it finds the path is not
            // the RPC's: past those, the page may be served.
            if let refusal = endpoint.gatekeeper.refusal(for: call), refusal.status != 404 {
                return Self.response(refusal)
            }
            do {
                return try await webClient.handle(request, context: context) { _, _ in
                    throw HTTPError(.notFound)
                }
            } catch let error as any HTTPResponseError {
                return try error.response(from: request, context: context)
            }
        }
        // Refused before its body is read when the head alone decides (wrong address, password or
        // session id): a stranger cannot make the daemon read 16 MiB.
        if let refusal = endpoint.gatekeeper.refusal(for: call) { return Self.response(refusal) }
        let limit = endpoint.gatekeeper.policy.maximumBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            return Self.response(tooLarge(limit))
        }
        do {
            call.body = Array(try await request.body.collect(upTo: limit).readableBytesView)
        } catch {
            return Self.response(tooLarge(limit))
        }
        return Self.response(await endpoint.respond(to: call))
    }

    private func tooLarge(_ limit: Int) -> RPCHTTPResponse {
        RPCHTTPResponse(
            status: 413, reason: "Content Too Large", headers: ["Content-Type": "text/plain; charset=UTF-8"],
            body: Array("413 Content Too Large: the request body is over \(limit) bytes\n".utf8))
    }

    /// The endpoint's response as Hummingbird's.
    static func response(_ response: RPCHTTPResponse) -> Response {
        var headers = HTTPFields()
        for field in response.headers.fields {
            if let name = HTTPField.Name(field.name) {
                headers.append(HTTPField(name: name, value: field.value))
            }
        }
        return Response(
            status: HTTPResponse.Status(code: response.status, reasonPhrase: response.reason),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body)))
    }
}
