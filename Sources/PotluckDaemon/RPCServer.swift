internal import HTTPTypes
internal import Hummingbird
import Locking
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
    /// The memory of the last reply, written again by the next: a torrent-get of 10,000 torrents is
    /// 2.6 MB, and writing it into fresh pages, once as JSON and once into NIO's buffer, spent most of
    /// the call in page faults (6.5 → 2 ms of CPU a call with the memory kept).
    let spareReply: SpareReplyMemory

    init(
        endpoint: RPCEndpoint, live: LiveSettings, metrics: DaemonMetrics, webFolder: String?,
        spareReply: SpareReplyMemory, logger: Logger
    ) {
        self.endpoint = endpoint
        self.spareReply = spareReply
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
        var spare = spareReply.take()
        var reply = await endpoint.respond(to: call, reusing: spare.bytes)
        if spare.buffer.capacity < reply.body.count {
            // Exactly as large: grown by writing, it would take the next power of two.
            spare.buffer = ByteBufferAllocator().buffer(capacity: reply.body.count)
        } else {
            spare.buffer.clear()
        }
        spare.buffer.writeBytes(reply.body)
        let response = Self.response(reply, body: spare.buffer)
        // Swapped out, so that the array is not shared and keeps its memory when emptied.
        swap(&spare.bytes, &reply.body)
        spareReply.give(spare)
        return response
    }

    private func tooLarge(_ limit: Int) -> RPCHTTPResponse {
        RPCHTTPResponse(
            status: 413, reason: "Content Too Large", headers: ["Content-Type": "text/plain; charset=UTF-8"],
            body: Array("413 Content Too Large: the request body is over \(limit) bytes\n".utf8))
    }

    /// The endpoint's response as Hummingbird's, with its body in `body` if given.
    static func response(_ response: RPCHTTPResponse, body: ByteBuffer? = nil) -> Response {
        var headers = HTTPFields()
        for field in response.headers.fields {
            if let name = HTTPField.Name(field.name) {
                headers.append(HTTPField(name: name, value: field.value))
            }
        }
        return Response(
            status: HTTPResponse.Status(code: response.status, reasonPhrase: response.reason),
            headers: headers,
            body: ResponseBody(byteBuffer: body ?? ByteBuffer(bytes: response.body)))
    }
}

/// A reply's two copies' memory, kept from one RPC reply to the next while clients keep asking. A
/// buffer still being sent when the next reply takes it is not written over: a `ByteBuffer` shared
/// with the response being sent gets new memory when cleared, and the array is swapped out of the
/// reply it was.
final class SpareReplyMemory: Sendable {
    /// Memory of replies larger than this is let go: one huge reply should not be kept for ever.
    static let largestKeptBytes = 16 << 20

    struct Memory {
        var bytes: [UInt8] = []
        var buffer = ByteBuffer()
        var givenBack = ContinuousClock.now
    }

    private let memory = Lock<Memory>(Memory())

    /// Lets the memory go once no reply has used it for `idle`: a daemon at rest keeps none.
    func letGo(ifUnusedFor idle: Duration) {
        memory.withLock { kept in
            if kept.bytes.capacity > 0 && ContinuousClock.now - kept.givenBack > idle { kept = Memory() }
        }
    }

    /// The kept memory, left empty here until given back.
    func take() -> Memory {
        memory.withLock { kept in
            let taken = kept
            kept = Memory()
            return taken
        }
    }

    func give(_ spare: Memory) {
        guard spare.bytes.capacity <= Self.largestKeptBytes, spare.buffer.capacity <= Self.largestKeptBytes
        else { return }
        var given = spare
        given.givenBack = .now
        memory.withLock { $0 = given }
    }
}
