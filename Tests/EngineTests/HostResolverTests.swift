import Glibc
import Locking
import Testing
import URing

@testable import Engine

/// `HostResolver` with its clock injected. Numeric names resolve without a DNS server, and a name with
/// a label longer than DNS allows fails without asking one.
@Suite struct HostResolverTests {
    final class Clock: Sendable {
        let nanoseconds = Lock<UInt64>(1)
        func advance(minutes: UInt64) { nanoseconds.withLock { $0 += minutes * 60 * 1_000_000_000 } }
    }

    /// Asks until the answer is no longer pending (at most 5 s).
    static func settled(_ resolver: HostResolver, _ name: String) -> HostResolver.Lookup {
        for _ in 0..<500 {
            let lookup = resolver.lookup(name, consumingFailure: false)
            if lookup != .pending { return lookup }
            usleep(10_000)
        }
        return .pending
    }

    @Test func aFullTableGivesItsOldestAnswersPlaceToNewNames() {
        let clock = Clock()
        let resolver = HostResolver(waker: nil) { clock.nanoseconds.withLock { $0 } }
        for number in 1...HostResolver.maxNames {
            clock.nanoseconds.withLock { $0 += 1 }
            guard case .resolved = Self.settled(resolver, "127.0.0.\(number)") else {
                Issue.record("127.0.0.\(number) did not resolve")
                return
            }
        }
        // The 65th name takes the place of the first answer, which is looked up again when asked.
        #expect(resolver.lookup("127.0.1.1") == .pending)
        #expect(Self.settled(resolver, "127.0.1.1") == .resolved(.ipv4(address: 0x7f00_0101, port: 0)))
        #expect(resolver.lookup("127.0.0.2") == .resolved(.ipv4(address: 0x7f00_0002, port: 0)))
        #expect(resolver.lookup("127.0.0.1") == .pending)
    }

    @Test func answersAreLookedUpAgainAfterHalfAnHour() {
        let clock = Clock()
        let resolver = HostResolver(waker: nil) { clock.nanoseconds.withLock { $0 } }
        #expect(Self.settled(resolver, "127.0.0.7") == .resolved(.ipv4(address: 0x7f00_0007, port: 0)))
        clock.advance(minutes: 29)
        #expect(resolver.lookup("127.0.0.7") == .resolved(.ipv4(address: 0x7f00_0007, port: 0)))
        clock.advance(minutes: 1)
        #expect(resolver.lookup("127.0.0.7") == .pending)
        #expect(Self.settled(resolver, "127.0.0.7") == .resolved(.ipv4(address: 0x7f00_0007, port: 0)))
    }

    /// Asking whether to wait leaves a failure for the caller who reports it; reporting forgets it.
    @Test func aFailureIsKeptUntilReported() {
        let resolver = HostResolver(waker: nil)
        let name = String(repeating: "x", count: 70) + ".invalid"
        guard case .failed = Self.settled(resolver, name) else {
            Issue.record("\(name) did not fail")
            return
        }
        guard case .failed = resolver.lookup(name, consumingFailure: false) else {
            Issue.record("a peek forgot the failure")
            return
        }
        guard case .failed = resolver.lookup(name) else {
            Issue.record("the failure was not reported")
            return
        }
        #expect(resolver.lookup(name) == .pending)
    }
}
