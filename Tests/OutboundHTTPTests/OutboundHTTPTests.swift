import Foundation
import Glibc
import OutboundHTTP
import Testing
import Tracker

/// The blocking client against real sockets: a server thread in the test answers with canned bytes and
/// keeps what it was sent; https through Python's `ssl` with a certificate made here.
@Suite struct OutboundHTTPTests {
    @Test func aPostCarriesItsHeadersAndBodyAndAChunkedAnswerIsJoined() async throws {
        let server = try OneShotServer(
            answer:
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        let request = OutboundHTTP.Request(
            method: "POST", url: try TrackerURL("http://127.0.0.1:\(server.port)/rpc?x=1"),
            headers: [HTTPHeader(name: "X-Session", value: "abc\r\nInjected: yes")], body: Array("{}".utf8))
        let response = try await OutboundHTTP.send(request, timeoutSeconds: 10)
        #expect(response.statusCode == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == "hello world")
        let received = server.received()
        #expect(received.hasPrefix("POST /rpc?x=1 HTTP/1.1\r\n"), "\(received)")
        #expect(received.contains("Host: 127.0.0.1:\(server.port)\r\n"))
        #expect(
            received.contains("X-Session: abcInjected: yes\r\n"), "a header value cannot break the header")
        #expect(received.contains("Content-Length: 2\r\n"))
        #expect(received.hasSuffix("\r\n\r\n{}"))
    }

    @Test func aBodyUntilTheConnectionClosesIsKept() throws {
        let server = try OneShotServer(answer: "HTTP/1.1 404 Not Found\r\n\r\nnothing here")
        let response = try OutboundHTTP.sendWaiting(
            .init(url: try TrackerURL("http://127.0.0.1:\(server.port)/missing")), timeoutSeconds: 10)
        #expect(response.statusCode == 404)
        #expect(String(decoding: response.body, as: UTF8.self) == "nothing here")
    }

    @Test func anAnswerOverTheLimitIsRefused() throws {
        let server = try OneShotServer(answer: "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        var limits = HTTPResponseParser.Limits()
        limits.maxBodyBytes = 4096
        #expect(throws: OutboundHTTPError.response(.http(.bodyTooLarge(limit: 4096)))) {
            try OutboundHTTP.sendWaiting(
                .init(url: try TrackerURL("http://127.0.0.1:\(server.port)/")), timeoutSeconds: 10,
                limits: limits)
        }
    }

    @Test func aSilentServerTimesOutAndAClosedPortIsUnreachable() throws {
        let silent = try OneShotServer(answer: nil)
        let began = ContinuousClock.now
        #expect(throws: OutboundHTTPError.timedOut(seconds: 0.5)) {
            try OutboundHTTP.sendWaiting(
                .init(url: try TrackerURL("http://127.0.0.1:\(silent.port)/")), timeoutSeconds: 0.5)
        }
        #expect(ContinuousClock.now - began < .seconds(5))
        let closed = try TrackerURL("http://127.0.0.1:\(try OneShotServer.unusedPort())/")
        do {
            _ = try OutboundHTTP.sendWaiting(.init(url: closed), timeoutSeconds: 5)
            Issue.record("a closed port answered")
        } catch {
            guard case .unreachable(let reason) = error else { throw error }
            #expect(reason.contains("refused"), "\(reason)")
        }
    }

    @Test func httpsVerifiesTheCertificate() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("outbound-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let certificate = folder.appendingPathComponent("cert.pem").path
        let key = folder.appendingPathComponent("key.pem").path
        try run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                key,
                "-out", certificate, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
        // Two connections: the untrusted attempt, then the trusted one.
        let server = try TLSServer(certificate: certificate, key: key, connections: 2, body: "over tls")
        defer { server.stop() }
        let url = try TrackerURL("https://127.0.0.1:\(server.port)/x")
        do {
            _ = try OutboundHTTP.sendWaiting(.init(url: url), timeoutSeconds: 10)
            Issue.record("an untrusted certificate was accepted")
        } catch {
            guard case .tls(let reason) = error else { throw error }
            #expect("\(reason)".contains("certificate verify failed"), "\(reason)")
        }
        let response = try OutboundHTTP.sendWaiting(
            .init(url: url, extraCAFile: certificate), timeoutSeconds: 10)
        #expect(response.statusCode == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == "over tls")
    }

    private func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "\(tool) failed")
    }
}

/// Listens on loopback, takes one connection, keeps what it reads until the request's headers (and a
/// body of the length they give) are in, then sends `answer` and closes; with no answer it holds the
/// connection open until the test ends.
private final class OneShotServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let done = DispatchSemaphore(value: 0)
    private var bytes: [UInt8] = []

    init(answer: String?) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 1) == 0
                    && getsockname(listener, $0, &length) == 0
            }
        }
        try #require(listening, "cannot listen on loopback")
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else {
                done.signal()
                return
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            while !Self.isComplete(bytes) {
                let read = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                if read <= 0 { break }
                bytes += chunk[..<read]
            }
            done.signal()
            guard let answer else { return }
            _ = Array(answer.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, 0) }
            close(connection)
        }
    }

    deinit { close(listener) }

    /// What the client sent, once the request is complete.
    func received() -> String {
        done.wait()
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func isComplete(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let length =
            text[..<end.lowerBound].split(separator: "\r\n").first {
                $0.lowercased().hasPrefix("content-length:")
            }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        return text[end.upperBound...].utf8.count >= length
    }

    /// A loopback port nothing listens on (bound, then released).
    static func unusedPort() throws -> Int {
        let server = try OneShotServer(answer: nil)
        let port = server.port
        shutdown(server.listener, Int32(SHUT_RDWR))
        return port
    }
}

/// Python's `ssl` module answering `connections` GETs over TLS with `body`.
private final class TLSServer {
    let port: Int
    private let process = Process()

    init(certificate: String, key: String, connections: Int, body: String) throws {
        let script = """
            import socket, ssl, sys
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            print(listener.getsockname()[1], flush=True)
            for _ in range(int(sys.argv[3])):
                raw, _ = listener.accept()
                try:
                    tls = context.wrap_socket(raw, server_side=True)
                    request = b""
                    while b"\\r\\n\\r\\n" not in request:
                        request += tls.recv(4096)
                    body = sys.argv[4].encode()
                    tls.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
                    tls.close()
                except (ssl.SSLError, OSError):
                    raw.close()
            """
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script, certificate, key, String(connections), body]
        process.standardOutput = output
        try process.run()
        let line = output.fileHandleForReading.availableData
        port = try #require(
            Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
