import Dispatch
import Glibc
import TLS
import Tracker

/// Why a request got no usable answer.
public enum OutboundHTTPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The host name could not be resolved, or no address of it took the connection.
    case unreachable(String)
    /// The deadline passed first.
    case timedOut(seconds: Double)
    /// The TLS session failed (a certificate that does not verify among the reasons).
    case tls(TLSError)
    /// The answer was malformed, cut short or over a limit.
    case response(TrackerError)
    /// Reading or writing the socket failed.
    case io(String)

    public var description: String {
        switch self {
        case .unreachable(let reason): reason
        case .timedOut(let seconds): "no answer within \(Int(seconds)) s"
        case .tls(let error): "TLS: \(error)"
        case .response(let error): "\(error)"
        case .io(let reason): reason
        }
    }
}

/// A blocking HTTP/1.1 client for the few requests made outside the engine's rings: a `torrent-add`
/// URL, `port-test`, the benchmarks' RPC calls. One connection per request (`Connection: close`), http
/// or https (OpenSSL through ``TLSConnection``, the system's certificates), every wait bounded by one
/// deadline, the answer bounded by the parser's limits. Call it from a thread that may block, or
/// through ``send(_:timeoutSeconds:limits:)`` with `await`.
///
/// It stands in for URLSession: FoundationNetworking brings libcurl and some thirty more libraries into
/// every start of the binary, about 6 ms of CPU each time even when nothing is fetched.
public enum OutboundHTTP {
    /// What to ask: the method, the URL (http or https), extra headers and a body.
    public struct Request: Sendable {
        public var method: String
        public var url: TrackerURL
        public var headers: [HTTPHeader]
        public var body: [UInt8]
        /// A CA certificate (PEM) trusted beside the system's, for https.
        public var extraCAFile: String?

        public init(
            method: String = "GET", url: TrackerURL, headers: [HTTPHeader] = [], body: [UInt8] = [],
            extraCAFile: String? = nil
        ) {
            self.method = method
            self.url = url
            self.headers = headers
            self.body = body
            self.extraCAFile = extraCAFile
        }
    }

    /// Sent as `User-Agent`.
    public static let userAgent = "Potluck"

    /// `request`'s answer (redirects are answers too: the caller decides whether to follow them), from a
    /// dispatch worker so that no task of the cooperative pool waits on the network.
    public static func send(
        _ request: Request, timeoutSeconds: Double, limits: HTTPResponseParser.Limits = .init()
    ) async throws(OutboundHTTPError) -> HTTPResponse {
        let result = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    returning: Result { () throws(OutboundHTTPError) -> HTTPResponse in
                        try sendWaiting(request, timeoutSeconds: timeoutSeconds, limits: limits)
                    })
            }
        }
        return try result.get()
    }

    /// `request`'s answer, waited for on the calling thread.
    public static func sendWaiting(
        _ request: Request, timeoutSeconds: Double, limits: HTTPResponseParser.Limits = .init()
    ) throws(OutboundHTTPError) -> HTTPResponse {
        guard request.url.scheme != .udp else {
            throw .unreachable("\(request.url) is not an http or https URL")
        }
        let deadline = Deadline(seconds: timeoutSeconds)
        let socket = try connect(to: request.url, deadline: deadline)
        defer { close(socket) }
        let bytes = HTTPRequestEncoder.request(
            request.method, request.url, headers: request.headers, body: request.body, userAgent: userAgent)
        var parser = HTTPResponseParser(limits: limits)
        if request.url.requiresTLS {
            return try exchangeOverTLS(
                bytes, request: request, socket: socket, parser: &parser, deadline: deadline)
        }
        try sendAll(bytes, socket: socket, deadline: deadline)
        while true {
            let chunk = try receiveSome(socket: socket, deadline: deadline)
            do throws(TrackerError) {
                if chunk.isEmpty { return try parser.finish() }
                if case .complete(let response) = try parser.feed(chunk) { return response }
            } catch {
                throw .response(error)
            }
        }
    }

    private static func exchangeOverTLS(
        _ bytes: [UInt8], request: Request, socket: Int32, parser: inout HTTPResponseParser,
        deadline: Deadline
    ) throws(OutboundHTTPError) -> HTTPResponse {
        let tls: TLSConnection
        do throws(TLSError) {
            tls = try TLSConnection(context: TLSContext(extraCAFile: request.extraCAFile), for: request.url)
            tls.write(bytes)
            try tls.encryptPending()
        } catch {
            throw .tls(error)
        }
        try sendAll(tls.takeOutput(), socket: socket, deadline: deadline)
        while true {
            let chunk = try receiveSome(socket: socket, deadline: deadline)
            guard !chunk.isEmpty else {
                do throws(TrackerError) { return try parser.finish() } catch { throw .response(error) }
            }
            let plaintext: [UInt8]
            do throws(TLSError) {
                let buffered = chunk.withUnsafeBytes { bytes in
                    Result { () throws(TLSError) in try tls.receive(bytes) }
                }
                try buffered.get()
                plaintext = try tls.advance()
            } catch {
                throw .tls(error)
            }
            try sendAll(tls.takeOutput(), socket: socket, deadline: deadline)
            do throws(TrackerError) {
                if !plaintext.isEmpty, case .complete(let response) = try parser.feed(plaintext) {
                    return response
                }
                if tls.closed { return try parser.finish() }
            } catch {
                throw .response(error)
            }
        }
    }

    // MARK: The socket

    /// A monotonic deadline, and what is left of it in poll's milliseconds.
    struct Deadline {
        let seconds: Double
        private let end: Double

        init(seconds: Double) {
            self.seconds = seconds
            end = Self.now() + seconds
        }

        /// Milliseconds left, at least 1 while any time is left; nil once it passed.
        var remainingMilliseconds: Int32? {
            let left = end - Self.now()
            return left > 0 ? Int32(min(left * 1000 + 1, Double(Int32.max))) : nil
        }

        private static func now() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC, &time)
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        }
    }

    /// A connected, non-blocking socket to the URL's host: each of its addresses in turn.
    private static func connect(to url: TrackerURL, deadline: Deadline) throws(OutboundHTTPError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let host: String
        switch url.host {
        case .name(let name): host = name
        case .ipv4(let address):
            host = address.description
            hints.ai_flags = AI_NUMERICHOST
        case .ipv6(let address):
            host = address.description
            hints.ai_flags = AI_NUMERICHOST
        }
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(url.port), &hints, &found)
        guard status == 0, let first = found else {
            throw .unreachable("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var reason = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry?.pointee {
            entry = address.ai_next
            let socket = Glibc.socket(
                address.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                    | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { continue }
            if Glibc.connect(socket, address.ai_addr, address.ai_addrlen) == 0 { return socket }
            guard errno == EINPROGRESS else {
                reason = String(cString: strerror(errno))
                close(socket)
                continue
            }
            do throws(OutboundHTTPError) {
                try wait(for: Int16(POLLOUT), socket: socket, deadline: deadline)
            } catch {
                close(socket)
                throw error
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 { return socket }
            reason = String(cString: strerror(error))
            close(socket)
        }
        throw .unreachable("cannot connect to \(url.hostHeader): \(reason)")
    }

    /// Waits until `socket` is ready for `events`, or throws once the deadline passes.
    private static func wait(for events: Int16, socket: Int32, deadline: Deadline) throws(OutboundHTTPError) {
        while true {
            guard let milliseconds = deadline.remainingMilliseconds else {
                throw .timedOut(seconds: deadline.seconds)
            }
            var entry = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .io("poll: \(String(cString: strerror(errno)))") }
        }
    }

    private static func sendAll(_ bytes: [UInt8], socket: Int32, deadline: Deadline) throws(OutboundHTTPError)
    {
        var sent = 0
        while sent < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.send(socket, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                sent += written
            } else if written < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(for: Int16(POLLOUT), socket: socket, deadline: deadline)
            } else {
                throw .io("sending the request: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// What arrived next; empty once the server closed the connection.
    private static func receiveSome(socket: Int32, deadline: Deadline) throws(OutboundHTTPError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let read = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if read >= 0 { return Array(buffer[..<read]) }
            guard errno == EAGAIN || errno == EINTR else {
                throw .io("reading the answer: \(String(cString: strerror(errno)))")
            }
            try wait(for: Int16(POLLIN), socket: socket, deadline: deadline)
        }
    }
}
