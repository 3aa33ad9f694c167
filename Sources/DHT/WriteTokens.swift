import Hashing
import TorrentModel

/// The write tokens this node hands out in `get_peers` answers and checks in `announce_peer` queries.
///
/// A token is the first 8 bytes of SHA-1 over the asker's IP and a secret, so it proves the announcer
/// received our answer at that IP without us storing anything per asker. The secret rotates every
/// `rotationNanoseconds` (5 minutes) and the previous one is still accepted, so a token stays valid for
/// 5 to 10 minutes, as BEP 5 describes.
struct WriteTokens: Sendable {
    static let tokenByteCount = 8
    let rotationNanoseconds: UInt64
    private var current: [UInt8]
    private var previous: [UInt8]
    private var rotatedAt: Instant

    init(rotationNanoseconds: UInt64, random: inout SeededRandom, now: Instant) {
        self.rotationNanoseconds = rotationNanoseconds
        current = Self.secret(&random)
        previous = current
        rotatedAt = now
    }

    /// Rotates the secret when it is due.
    mutating func tick(now: Instant, random: inout SeededRandom) {
        guard now.nanoseconds(since: rotatedAt) >= rotationNanoseconds else { return }
        previous = current
        current = Self.secret(&random)
        rotatedAt = now
    }

    func token(for address: DHTIPAddress) -> [UInt8] { Self.token(address, secret: current) }

    func isValid(_ token: [UInt8], for address: DHTIPAddress) -> Bool {
        token == Self.token(address, secret: current) || token == Self.token(address, secret: previous)
    }

    private static func token(_ address: DHTIPAddress, secret: [UInt8]) -> [UInt8] {
        Array(SHA1.hash(address.bytes + secret).bytes.prefix(tokenByteCount))
    }

    private static func secret(_ random: inout SeededRandom) -> [UInt8] {
        (0..<2).flatMap { _ in withUnsafeBytes(of: random.next()) { Array($0) } }
    }
}
