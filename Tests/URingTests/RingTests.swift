import Buffers
import Glibc
import Testing

@testable import URing

/// The ring with everything the kernel has, and with every optional feature forced off: both paths
/// must behave the same.
let featureSets: [RingOptions] = [RingOptions(), RingOptions(disabledFeatures: .all)]

@Suite struct RingBasicsTests {
    @Test func probeReportsFeaturesAndHonoursDisabledOnes() throws {
        let full = try Ring()
        let bare = try Ring(options: RingOptions(disabledFeatures: .all))
        #expect(bare.features.isEmpty)
        #expect(full.features.isSuperset(of: bare.features))
        // Kernels this project supports (5.19+) have these; the probe must find them.
        if Ring.kernelVersion().0 >= 6 {
            #expect(full.features.contains([.multishotAccept, .multishotReceive, .providedBufferRing]))
        }
    }

    @Test func nopCompletesWithItsToken() throws {
        let harness = try Harness()
        let token = try harness.enqueue(.nop)
        let completion = try harness.completion(of: token)
        #expect(completion.token == token)
        #expect(completion.token.kind == .nop)
        #expect(completion.result == 0)
    }

    @Test func timeoutFires() throws {
        let harness = try Harness()
        let completion = try harness.perform(.timeout(.milliseconds(20), completionCount: 0))
        #expect(completion.result == -ETIME)
    }

    @Test func linkedTimeoutCancelsAStuckReceive() throws {
        let harness = try Harness()
        let (a, b) = try Socket.makeStreamPair()
        let pair = [a, b]
        defer { pair.forEach { close($0) } }
        var buffer = [UInt8](repeating: 0, count: 64)
        try buffer.withUnsafeMutableBytes { raw in
            let receive = try harness.enqueue(.receive(fd: pair[0], into: raw), flags: .link)
            let timeout = try harness.enqueue(.linkTimeout(.milliseconds(20)))
            #expect(try harness.completion(of: receive).result == -ECANCELED)
            #expect(try harness.completion(of: timeout).result == -ETIME)
        }
    }

    @Test func cancelEndsAPendingReceive() throws {
        let harness = try Harness()
        let (a, b) = try Socket.makeStreamPair()
        let pair = [a, b]
        defer { pair.forEach { close($0) } }
        var buffer = [UInt8](repeating: 0, count: 64)
        try buffer.withUnsafeMutableBytes { raw in
            let receive = try harness.enqueue(.receive(fd: pair[0], into: raw))
            try harness.ring.submit()
            let cancel = try harness.enqueue(.cancel(receive, all: false))
            #expect(try harness.completion(of: cancel).result == 0)
            let cancelled = try harness.completion(of: receive)
            #expect(cancelled.result == -ECANCELED)
            #expect(throws: IOError(.receive, errno: .canceled)) { try cancelled.value() }
        }
    }

    @Test func thousandOperationsInFlight() throws {
        // More than the submission queue holds: enqueue must flush full batches by itself.
        let harness = try Harness(RingOptions(entries: 64))
        let tokens = try (0..<1000).map { i in
            try harness.enqueue(.timeout(.milliseconds(Int64(i % 7)), completionCount: 0))
        }
        for token in tokens {
            #expect(try harness.completion(of: token).result == -ETIME)
        }
    }

    @Test func operationsInFlightCountEachUntilItsLastCompletion() throws {
        let harness = try Harness()
        let (a, b) = try Socket.makeStreamPair()
        defer { [a, b].forEach { close($0) } }
        for _ in 0..<3 { try harness.enqueue(.nop) }
        let poll = try harness.enqueue(.pollAdd(fd: a, events: UInt32(POLLIN), multishot: true))
        #expect(harness.ring.operationsInFlight == 4)
        var byte: UInt8 = 1
        #expect(write(b, &byte, 1) == 1)
        let first = try harness.completion(of: poll)
        #expect(first.hasMore)
        // The nops are done; the multishot poll stays armed and counted once, beside the read the
        // ring keeps armed on its wake-up eventfd.
        #expect(harness.ring.operationsInFlight == 2)
        let cancel = try harness.enqueue(.cancel(poll, all: false))
        #expect(try harness.completion(of: cancel).result == 0)
        var last = try harness.completion(of: poll)
        while last.hasMore { last = try harness.completion(of: poll) }
        #expect(harness.ring.operationsInFlight == 1)
    }

    @Test func errorsCarryOperationAndErrno() throws {
        let harness = try Harness()
        var buffer = [UInt8](repeating: 0, count: 8)
        try buffer.withUnsafeMutableBytes { raw in
            let bad = try harness.perform(.read(fd: 9999, into: raw, offset: 0))
            #expect(throws: IOError(.read, errno: .badFileDescriptor)) { try bad.value() }
        }
        let missing = try harness.perform(
            .openat(directory: AT_FDCWD, path: "/nonexistent/potluck", flags: O_RDONLY, mode: 0))
        #expect(throws: IOError(.openat, errno: .noSuchFile)) { try missing.value() }
        #expect(
            IOError(.openat, errno: .noSuchFile).description
                == "openat failed: No such file or directory (ENOENT)")

        // A port nobody listens on: bind one, note it, close it.
        let listener = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        let address = try Socket.localAddress(of: listener)
        close(listener)
        let client = try Socket.makeTCP(family: AF_INET)
        defer { close(client) }
        let refused = try harness.perform(.connect(fd: client, address: address))
        #expect(throws: IOError(.connect, errno: .connectionRefused)) { try refused.value() }
    }

    @Test func wakeFromAnotherThreadEndsTheWait() throws {
        let ring = try Ring()
        let waker = ring.waker
        let started = ContinuousClock.now
        let thread = Thread {
            usleep(20_000); waker.wake()
        }
        thread.start()
        // Without the wake this would wait the full minute.
        try ring.submitAndWait(minimumCompletions: 1, timeout: .seconds(60))
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(ring.drain { _ in } == 0, "wake-ups are consumed by the ring, not passed on")
        thread.join()
    }
}

@Suite struct OperationTableTests {
    @Test func staleTokensAreRecognised() {
        var table = OperationTable<String>(capacity: 2)
        let first = table.acquire("first")!
        #expect(table.context(for: first) == "first")
        let releasedFirst = table.release(first)
        #expect(releasedFirst)
        let second = table.acquire("second")!
        #expect(second.index == first.index, "the freed slot is reused")
        #expect(table.context(for: first) == nil, "the old generation no longer matches")
        let releasedAgain = table.release(first)
        #expect(!releasedAgain, "a stale handle frees nothing")
        #expect(table.context(for: second) == "second")
        _ = table.acquire("third")!
        #expect(table.acquire("fourth") == nil, "a full table says so instead of growing")
    }

    @Test func tokensPackSlotGenerationTenantAndKind() {
        let slot = OperationSlot(owner: 0xa5, tenant: 0xfffe, index: 0xbeef, generation: 0x1234)
        let token = CompletionToken(slot: slot, kind: .sendZeroCopy)
        #expect(token.slot == slot)
        #expect(token.slot.owner == 0xa5)
        #expect(token.slot.tenant == 0xfffe)
        #expect(token.kind == .sendZeroCopy)
        #expect(CompletionToken(rawValue: 0x00ff_0000_0000_0000).kind == nil)
        var storage = OperationTable<Int>(capacity: 1, owner: 2)
        let stored = storage.acquire(1)!
        #expect(stored.owner == 2)
        #expect(
            storage.context(for: OperationSlot(owner: 3, index: stored.index, generation: stored.generation))
                == nil)
        var tenantsTable = OperationTable<Int>(capacity: 1, owner: 2, tenant: 7)
        let tenants = tenantsTable.acquire(1)!
        #expect(tenants.tenant == 7)
        #expect(
            tenantsTable.context(
                for: OperationSlot(owner: 2, tenant: 8, index: tenants.index, generation: tenants.generation))
                == nil, "another tenant's token never matches")
    }
}

@Suite struct RingUnavailableTests {
    @Test func eachCauseNamesItsFix() {
        #expect(
            RingUnavailableError.explaining(setupErrno: .noFunction, disabledSetting: nil).description
                .contains("seccomp"))
        #expect(
            RingUnavailableError.explaining(setupErrno: .notPermitted, disabledSetting: 2).description
                .contains(
                    "sysctl -w kernel.io_uring_disabled=0"))
        #expect(
            RingUnavailableError.explaining(setupErrno: .notPermitted, disabledSetting: 1).description
                .contains(
                    "io_uring_group"))
        #expect(
            RingUnavailableError.explaining(setupErrno: .noMemory, disabledSetting: 0).description.contains(
                "ulimit -l"))
    }
}

/// A minimal thread for tests that need a second one.
final class Thread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    private var handle = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(
            &handle, nil,
            { raw in
                let thread = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
                thread.body()
                return nil
            }, context)
    }

    func join() { pthread_join(handle, nil) }
}
