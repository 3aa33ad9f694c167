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
/// caller's next attempt (after its back-off) looks the name up again. An answer is kept for
/// ``answerLifetimeNanoseconds`` (a reactor's resolver serves a daemon for months, and trackers
/// move), and a full table gives the place of its oldest answer to a new name.
final class HostResolver: Sendable {
    enum Lookup: Sendable, Equatable {
        case pending
        case resolved(SocketAddress)
        case failed(String)
    }

    /// Names one resolver tracks at once (a torrent rarely names more than a dozen trackers, and the
    /// announcer keeps at most 16 named peers waiting; a reactor's scrapes name more, in turn).
    static let maxNames = 64
    /// How long an answer is trusted: half an hour, a tracker's usual announce interval.
    static let answerLifetimeNanoseconds: UInt64 = 30 * 60 * 1_000_000_000

    private struct Entry {
        var lookup: Lookup
        /// When the answer came (monotonic nanoseconds); 0 while pending.
        var since: UInt64
    }

    private let results = Lock<[String: Entry]>([:])
    private let waker: RingWaker?
    private let clock: @Sendable () -> UInt64

    init(waker: RingWaker?, clock: @escaping @Sendable () -> UInt64 = HostResolver.monotonicNanoseconds) {
        self.waker = waker
        self.clock = clock
    }

    /// The address for `name` if known; otherwise starts a lookup and reports `.pending`. A failure is
    /// reported once and forgotten, unless `consumingFailure` is false (asking whether to wait).
    func lookup(_ name: String, consumingFailure: Bool = true) -> Lookup {
        let now = clock()
        let (lookup, start) = results.withLock { table -> (Lookup, Bool) in
            if let existing = table[name] {
                switch existing.lookup {
                case .failed:
                    if consumingFailure { table[name] = nil }
                    return (existing.lookup, false)
                case .resolved where now &- existing.since >= Self.answerLifetimeNanoseconds:
                    break  // stale: looked up again below
                default:
                    return (existing.lookup, false)
                }
            } else if table.count >= Self.maxNames {
                let oldest = table.filter { if case .resolved = $0.value.lookup { true } else { false } }
                    .min { $0.value.since < $1.value.since }?.key
                guard let oldest else {
                    return (.failed("more than \(Self.maxNames) host names being looked up at once"), false)
                }
                table[oldest] = nil
            }
            table[name] = Entry(lookup: .pending, since: 0)
            return (.pending, true)
        }
        if start {
            DispatchQueue.global().async { [self] in
                let answer = Self.resolve(name)
                let now = clock()
                results.withLock { $0[name] = Entry(lookup: answer, since: now) }
                waker?.wake()
            }
        }
        return lookup
    }

    @Sendable static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
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
