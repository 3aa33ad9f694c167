internal import CLibSSL

/// Why a TLS connection failed, in words a log line can carry (OpenSSL's own reason included).
public struct TLSError: Error, Hashable, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }

    /// `what` failed; OpenSSL's error queue says why (and is emptied).
    static func openSSL(_ what: String) -> TLSError {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0, reasons.count < 4 {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reasons.append(
                String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        ERR_clear_error()
        return TLSError(reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))")
    }
}

/// Whom a TLS client believes: the system's certificate store, and optionally one more CA file (a
/// private tracker's own CA, or a test's self-signed certificate). Shared by the connections made with
/// it. Sendable: it is not changed once made, and OpenSSL lets threads share a configured `SSL_CTX`
/// (so it may be made on one thread and used on another).
public final class TLSContext: @unchecked Sendable {
    fileprivate let context: OpaquePointer

    /// Verifies servers against the system store (OpenSSL's default paths) and `extraCAFile` (PEM),
    /// with TLS 1.2 at least.
    public init(extraCAFile: String? = nil) throws(TLSError) {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw .openSSL("SSL_CTX_new") }
        self.context = context
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        guard potluck_ssl_ctx_set_min_tls12(context) == 1 else { throw .openSSL("setting TLS 1.2 minimum") }
        guard SSL_CTX_set_default_verify_paths(context) == 1 else {
            throw .openSSL("loading the system certificate store")
        }
        if let extraCAFile {
            guard SSL_CTX_load_verify_locations(context, extraCAFile, nil) == 1 else {
                throw .openSSL("loading CA file \(extraCAFile)")
            }
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// One TLS client connection whose bytes travel elsewhere: ciphertext from the network goes in with
/// ``receive(_:)``, ciphertext to send comes out of ``takeOutput()``, and the plaintext in between is
/// written with ``write(_:)`` and read from ``advance()``. It does no I/O itself, so the reactor
/// carries its bytes on the ring like any socket's.
///
/// The server's certificate must chain to a trusted CA and name the host we asked for (DNS name or IP
/// address); the handshake fails otherwise, with OpenSSL's reason.
///
/// Invariants: plaintext written before the handshake completes waits in `pendingPlaintext`;
/// `closed` is set once the server's close_notify has been read, and no plaintext follows it.
public final class TLSConnection {
    /// Plaintext bytes read per `SSL_read` call.
    static let readChunkBytes = 16 * 1024

    private let ssl: OpaquePointer
    private let networkToTLS: OpaquePointer
    private let tlsToNetwork: OpaquePointer
    private var pendingPlaintext: [UInt8] = []
    /// Whether the handshake has completed.
    public private(set) var isEstablished = false
    /// Whether the server ended the TLS session (close_notify).
    public private(set) var closed = false

    /// A client for `host`: a DNS name (sent as SNI and checked against the certificate) or a numeric
    /// IP address (checked against the certificate's IP addresses).
    public init(context: TLSContext, host: String, hostIsAddress: Bool) throws(TLSError) {
        guard let ssl = SSL_new(context.context) else { throw .openSSL("SSL_new") }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .openSSL("BIO_new")
        }
        // The SSL object owns both memory BIOs from here on.
        SSL_set_bio(ssl, input, output)
        self.ssl = ssl
        networkToTLS = input
        tlsToNetwork = output
        if hostIsAddress {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else {
                throw .openSSL("setting the expected IP address \(host)")
            }
        } else {
            guard potluck_ssl_set_tlsext_host_name(ssl, host) == 1, SSL_set1_host(ssl, host) == 1 else {
                throw .openSSL("setting the expected host name \(host)")
            }
        }
        SSL_set_connect_state(ssl)
    }

    deinit { SSL_free(ssl) }

    /// Plaintext to send once the handshake allows.
    public func write(_ bytes: [UInt8]) { pendingPlaintext += bytes }

    /// Ciphertext read from the network.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        guard BIO_write(networkToTLS, base, Int32(bytes.count)) == Int32(bytes.count) else {
            throw .openSSL("buffering received TLS bytes")
        }
    }

    /// Moves the session along with what has been received: the handshake, then pending writes, then
    /// reads. Returns the plaintext that arrived (possibly none); throws when the session failed,
    /// including a certificate that could not be verified.
    public func advance() throws(TLSError) -> [UInt8] {
        try encryptPending()
        guard isEstablished else { return [] }
        var plaintext: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: Self.readChunkBytes)
        while !closed {
            let read = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if read > 0 {
                plaintext += chunk[..<Int(read)]
                continue
            }
            let error = SSL_get_error(ssl, read)
            if error == SSL_ERROR_ZERO_RETURN {
                closed = true
            } else if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE {
                break
            } else {
                throw .openSSL("TLS read")
            }
        }
        return plaintext
    }

    /// Moves the handshake along and encrypts the plaintext written so far once it allows, without
    /// reading: what a sender calls after ``write(_:)`` when nothing new was received.
    public func encryptPending() throws(TLSError) {
        if !isEstablished {
            let result = SSL_do_handshake(ssl)
            if result == 1 {
                isEstablished = true
            } else {
                let error = SSL_get_error(ssl, result)
                if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
                let verify = SSL_get_verify_result(ssl)
                if verify != X509_V_OK {
                    ERR_clear_error()
                    let reason = String(cString: X509_verify_cert_error_string(verify))
                    throw TLSError("certificate verify failed: \(reason)")
                }
                throw .openSSL("TLS handshake")
            }
        }
        while !pendingPlaintext.isEmpty {
            let written = pendingPlaintext.withUnsafeBytes {
                SSL_write(ssl, $0.baseAddress, Int32(min($0.count, Int(Int32.max))))
            }
            if written > 0 {
                pendingPlaintext.removeFirst(Int(written))
                continue
            }
            let error = SSL_get_error(ssl, written)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { break }
            throw .openSSL("TLS write")
        }
    }

    /// Ciphertext the session wants sent (handshake messages, encrypted writes), emptied by the call.
    public func takeOutput() -> [UInt8] {
        let pending = potluck_bio_pending(tlsToNetwork)
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let read = bytes.withUnsafeMutableBytes { BIO_read(tlsToNetwork, $0.baseAddress, Int32($0.count)) }
        return read > 0 ? Array(bytes[..<Int(read)]) : []
    }
}
