import CLibCrypto

/// The Diffie-Hellman exchange of BitTorrent's protocol encryption (MSE/PE): the 768-bit prime `P` and
/// generator 2 every client uses, keys as 96-byte big-endian numbers.
public enum StreamEncryptionKeyExchange {
    /// Public keys and the shared secret are this long, zero-padded on the left.
    public static let keyByteCount = 96

    /// `P`, from the MSE specification.
    static let primeHex =
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563"

    /// `2^privateKey mod P`.
    public static func publicKey(privateKey: [UInt8]) -> [UInt8] {
        power(base: [2], exponent: privateKey)!
    }

    /// `peerPublicKey^privateKey mod P`, or nil when the peer's key is not a number in 2..<P-1 (a key of
    /// 0, 1 or P-1 would make the secret guessable).
    public static func sharedSecret(privateKey: [UInt8], peerPublicKey: [UInt8]) -> [UInt8]? {
        guard peerPublicKey.count == keyByteCount else { return nil }
        return power(base: peerPublicKey, exponent: privateKey, checkBase: true)
    }

    private static func power(base: [UInt8], exponent: [UInt8], checkBase: Bool = false) -> [UInt8]? {
        guard let context = BN_CTX_new() else { preconditionFailure("out of memory for a BN_CTX") }
        defer { BN_CTX_free(context) }
        var prime: OpaquePointer?
        guard BN_hex2bn(&prime, primeHex) > 0, let prime else { preconditionFailure("the MSE prime parses") }
        defer { BN_free(prime) }
        let baseNumber = BN_bin2bn(base, Int32(base.count), nil)
        let exponentNumber = BN_bin2bn(exponent, Int32(exponent.count), nil)
        let result = BN_new()
        defer {
            BN_free(baseNumber)
            BN_clear_free(exponentNumber)
            BN_clear_free(result)
        }
        if checkBase {
            let largest = BN_dup(prime)
            defer { BN_free(largest) }
            BN_sub_word(largest, 1)
            guard BN_cmp(baseNumber, BN_value_one()) > 0, BN_cmp(baseNumber, largest) < 0 else { return nil }
        }
        guard BN_mod_exp(result, baseNumber, exponentNumber, prime, context) == 1 else {
            preconditionFailure("BN_mod_exp failed")
        }
        var bytes = [UInt8](repeating: 0, count: keyByteCount)
        guard BN_bn2binpad(result, &bytes, Int32(keyByteCount)) == Int32(keyByteCount) else {
            preconditionFailure("a number mod P fits in 96 bytes")
        }
        return bytes
    }
}
