import CLibCrypto

/// The digest algorithms BitTorrent needs: SHA-1 for v1 pieces and infohashes, SHA-256 for v2.
public enum DigestAlgorithm: Hashable, Sendable {
    case sha1
    case sha256
}

/// The algorithm objects are fetched from OpenSSL once: an implicit fetch per call costs more than
/// hashing a 16 KiB block.
private struct FetchedDigests: @unchecked Sendable {
    let sha1: OpaquePointer
    let sha256: OpaquePointer

    static let shared: FetchedDigests = {
        guard let sha1 = EVP_MD_fetch(nil, "SHA1", nil), let sha256 = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("OpenSSL's libcrypto has no SHA-1/SHA-256 implementation; is libssl3 installed?")
        }
        return FetchedDigests(sha1: sha1, sha256: sha256)
    }()

    func md(_ algorithm: DigestAlgorithm) -> OpaquePointer {
        switch algorithm {
        case .sha1: sha1
        case .sha256: sha256
        }
    }
}

/// An incremental digest over OpenSSL's EVP interface. Reuse one per thread: `reset` keeps the context.
///
/// Not thread-safe; one instance per thread.
public final class StreamingHasher {
    public let algorithm: DigestAlgorithm
    private let context: OpaquePointer

    public init(_ algorithm: DigestAlgorithm) {
        self.algorithm = algorithm
        guard let context = EVP_MD_CTX_new() else {
            fatalError("OpenSSL could not allocate a digest context")
        }
        self.context = context
        reset()
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Starts a new digest.
    public func reset() {
        let ok = EVP_DigestInit_ex2(context, FetchedDigests.shared.md(algorithm), nil)
        precondition(ok == 1, "EVP_DigestInit_ex2 failed")
    }

    /// Adds bytes to the digest.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let ok = EVP_DigestUpdate(context, base, bytes.count)
        precondition(ok == 1, "EVP_DigestUpdate failed")
    }

    /// Adds bytes to the digest.
    public func update(_ bytes: some ContiguousBytes) {
        bytes.withUnsafeBytes { update($0) }
    }

    private func finish(into out: UnsafeMutableRawBufferPointer) {
        var length: UInt32 = 0
        let ok = EVP_DigestFinal_ex(context, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
        precondition(ok == 1 && Int(length) == out.count, "EVP_DigestFinal_ex failed")
        reset()
    }

    /// Ends a SHA-1 digest and starts a new one.
    public func finishSHA1() -> SHA1Digest {
        precondition(algorithm == .sha1, "this hasher computes \(algorithm)")
        return SHA1Digest(filling: { finish(into: $0) })
    }

    /// Ends a SHA-256 digest and starts a new one.
    public func finishSHA256() -> SHA256Digest {
        precondition(algorithm == .sha256, "this hasher computes \(algorithm)")
        return SHA256Digest { finish(into: $0) }
    }
}

/// Raw bytes that can be read in place.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(self)
    }
}

/// One-shot SHA-1.
public enum SHA1 {
    public static func hash(_ bytes: some ContiguousBytes) -> SHA1Digest {
        let hasher = StreamingHasher(.sha1)
        hasher.update(bytes)
        return hasher.finishSHA1()
    }
}

/// One-shot SHA-256.
public enum SHA256 {
    public static func hash(_ bytes: some ContiguousBytes) -> SHA256Digest {
        let hasher = StreamingHasher(.sha256)
        hasher.update(bytes)
        return hasher.finishSHA256()
    }
}
