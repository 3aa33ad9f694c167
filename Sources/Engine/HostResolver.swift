import Dispatch
import Glibc
import Locking
import URing

/// DNS lookups for host names: trackers', and peers a tracker names (BEP 3's dictionary form).
/// `getaddrinfo` blocks, so it runs on a background queue and the
/// reactor only ever reads the result table; a finished lookup wakes the ring.
///
/// Invariants: at most ``maxNames`` names are tracked; a name is looked up by one background task at a
/// time (its entry is `.pending` meanwhile); a failure is reported once and then forgotten, so the
/// caller's next attempt (after its back-off) looks the name up again. Successful answers are kept for
/// the session (no TTL: a session is one download).
final class HostResolver: Sendable {
    enum Lookup: Sendable, Equatable {
        case pending
        case resolved(SocketAddress)
        case failed(String)
    }

    /// Names one resolver may look up (a torrent rarely names more than a dozen trackers, and the
    /// announcer keeps at most 16 named peers waiting).
    static let maxNames = 64

    private let results = Lock<[String: Lookup]>([:])
    private let waker: RingWaker?

    init(waker: RingWaker?) { self.waker = waker }

    /// The address for `name` if known; otherwise starts a lookup and reports `.pending`.
    func lookup(_ name: String) -> Lookup {
        let (lookup, start) = results.withLock { table -> (Lookup, Bool) in
            if let existing = table[name] {
                if case .failed = existing { table[name] = nil }
                return (existing, false)
            }
            guard table.count < Self.maxNames else {
                return (.failed("more than \(Self.maxNames) tracker host names"), false)
            }
            table[name] = .pending
            return (.pending, true)
        }
        if start {
            DispatchQueue.global().async { [self] in
                let answer = Self.resolve(name)
                results.withLock { $0[name] = answer }
                waker?.wake()
            }
        }
        return lookup
    }

    /// Blocks in `getaddrinfo`; IPv4 answers are preferred (most trackers and peers still use IPv4).
    static func resolve(_ name: String) -> Lookup {
        switch addresses(of: name) {
        case .success(let addresses): .resolved(addresses[0])
        case .failure(let failure): .failed(failure.reason)
        }
    }

    /// Why a name did not resolve.
    struct Failure: Error {
        let reason: String
    }

    /// Blocks in `getaddrinfo`: the first IPv4 and the first IPv6 address of `name` (port 0), in that
    /// order, whichever it has; never empty.
    static func addresses(of name: String) -> Result<[SocketAddress], Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &list)
        guard status == 0 else { return .failure(Failure(reason: String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var v4: SocketAddress?
        var v6: SocketAddress?
        var entry = list
        while let current = entry {
            if let address = current.pointee.ai_addr {
                switch Int32(address.pointee.sa_family) {
                case AF_INET where v4 == nil:
                    let sin = UnsafeRawPointer(address).load(as: sockaddr_in.self)
                    v4 = .ipv4(address: UInt32(bigEndian: sin.sin_addr.s_addr), port: 0)
                case AF_INET6 where v6 == nil:
                    let sin6 = UnsafeRawPointer(address).load(as: sockaddr_in6.self)
                    v6 = .ipv6(address: withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }, port: 0)
                default:
                    break
                }
            }
            entry = current.pointee.ai_next
        }
        let found = [v4, v6].compactMap { $0 }
        return found.isEmpty ? .failure(Failure(reason: "no IPv4 or IPv6 address")) : .success(found)
    }
}
