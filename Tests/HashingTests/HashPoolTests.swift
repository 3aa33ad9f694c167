import Buffers
import Glibc
import Testing

@testable import Hashing

@Suite struct HashPoolTests {
    /// Random pieces of random lengths, hashed by four workers while the submitter keeps the pool full:
    /// every result must equal one-shot hashing of what the buffer held when it was submitted.
    /// With no workers (simulations), each job is hashed as it is submitted, in submission order.
    @Test(arguments: [4, 0])
    func poolMatchesOneShotHashingUnderConcurrency(threadCount: Int) throws {
        var generator = SplitMix(seed: 42)
        let buffers = BufferPool(slotSizeBytes: 64 * 1024, slotCount: 8)
        let hashers = try HashPool(threadCount: threadCount)
        var expected: [UInt64: PieceDigest] = [:]
        var matched = 0
        let jobCount = 300

        func check(_ result: HashResult) {
            #expect(expected.removeValue(forKey: result.token) == result.digest)
            #expect(buffers.state(of: result.slot!) == .leased, "a drained slot is the caller's again")
            buffers.release(result.slot!)
            matched += 1
        }

        for token in 0..<UInt64(jobCount) {
            var slot = buffers.lease()
            while slot == nil {
                hashers.drain(into: buffers, wait: true, check)
                slot = buffers.lease()
            }
            let memory = buffers.bytes(of: slot!)
            let length = Int(generator.next() % UInt64(memory.count + 1))
            for i in 0..<length { memory[i] = UInt8(truncatingIfNeeded: generator.next()) }
            let useSHA256 = token % 3 == 0
            let bytes = Array(memory[..<length])
            expected[token] = useSHA256 ? .sha256(SHA256.hash(bytes)) : .sha1(SHA1.hash(bytes))
            hashers.submit(
                slot!, length: length, in: buffers, kind: useSHA256 ? .sha256 : .sha1, token: token)
            #expect(buffers.state(of: slot!) == .lent)
        }
        while hashers.outstandingCount > 0 {
            hashers.drain(into: buffers, wait: true, check)
        }
        #expect(matched == jobCount)
        #expect(expected.isEmpty)
        #expect(buffers.freeCount == buffers.slotCount)
    }

    /// Many SHA-1 jobs over the caller's memory, queued faster than two workers take them: the
    /// workers take runs of them at once for `SHA1Lanes`, and every result is still its own job's.
    @Test func queuedSHA1JobsHashedTogetherKeepTheirTokens() throws {
        var generator = SplitMix(seed: 7)
        let hashers = try HashPool(threadCount: 2)
        let messages = (0..<200).map { index in
            (0..<(index % 5 == 0 ? 70_000 : 65_536)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        }
        let memory = messages.map { message in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: message.count, alignment: 1)
            copy.copyBytes(from: message)
            return UnsafeRawBufferPointer(copy)
        }
        defer { for bytes in memory { bytes.deallocate() } }
        for (token, bytes) in memory.enumerated() { hashers.submit(bytes, kind: .sha1, token: UInt64(token)) }
        var digests: [UInt64: PieceDigest] = [:]
        while hashers.outstandingCount > 0 {
            hashers.drainUnclaimed(wait: true) { digests[$0.token] = $0.digest }
        }
        #expect(digests.count == messages.count)
        for (token, message) in messages.enumerated() {
            #expect(digests[UInt64(token)] == .sha1(SHA1.hash(message)))
        }
    }

    @Test func aPoolWithoutWorkersHashesAtSubmission() throws {
        let buffers = BufferPool(slotSizeBytes: 1024, slotCount: 2)
        let hashers = try HashPool(threadCount: 0)
        for token in 0..<UInt64(2) {
            let slot = buffers.lease()!
            let memory = buffers.bytes(of: slot)
            for i in 0..<100 { memory[i] = UInt8(truncatingIfNeeded: Int(token) * 7 + i) }
            hashers.submit(slot, length: 100, in: buffers, kind: .sha1, token: token)
        }
        var tokens: [UInt64] = []
        hashers.drain(into: buffers) { result in
            tokens.append(result.token)
            let expected = (0..<100).map { UInt8(truncatingIfNeeded: Int(result.token) * 7 + $0) }
            #expect(result.digest == .sha1(SHA1.hash(expected)))
            buffers.release(result.slot!)
        }
        #expect(tokens == [0, 1], "both results are ready at once, in order")
    }

    @Test func lentSlotsAreNeverHandedOutAgain() throws {
        let buffers = BufferPool(slotSizeBytes: 4096, slotCount: 2)
        let hashers = try HashPool(threadCount: 1)
        let first = buffers.lease()!
        let second = buffers.lease()!
        hashers.submit(first, length: 100, in: buffers, kind: .sha1, token: 1)
        buffers.release(second)
        // One free slot (second); the lent one stays out of circulation until drained.
        let again = buffers.lease()!
        #expect(again.index == second.index)
        #expect(buffers.lease() == nil)
        while hashers.drain(into: buffers, wait: true, { buffers.release($0.slot!) }) == 0 {}
        #expect(buffers.lease()?.index == first.index)
    }

    @Test func releasingALentSlotIsAProgrammingError() async {
        await #expect(processExitsWith: .failure) {
            let buffers = BufferPool(slotSizeBytes: 4096, slotCount: 1)
            let slot = buffers.lease()!
            buffers.lend(slot)
            buffers.release(slot)
        }
    }

    @Test func resultsWakeTheOwner() throws {
        let woken = Counter()
        let buffers = BufferPool(slotSizeBytes: 4096, slotCount: 4)
        let hashers = try HashPool(threadCount: 2) { woken.increment() }
        for token in 0..<4 {
            hashers.submit(
                buffers.lease()!, length: 4096, in: buffers, kind: .sha1, token: UInt64(token))
        }
        var drained = 0
        while drained < 4 {
            drained += hashers.drain(into: buffers, wait: true) { buffers.release($0.slot!) }
        }
        // A worker wakes the owner just after publishing its result, which `drain` may take first.
        let deadline = ContinuousClock.now + .seconds(5)
        while woken.value == 0 && ContinuousClock.now < deadline { usleep(1_000) }
        #expect(woken.value >= 1)
        #expect(woken.value <= 4, "wake-ups coalesce: at most one per result")
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = ConditionLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

@Suite struct MerkleJobTests {
    /// BEP 52 written out the slow, obvious way: leaf hashes, zero leaves to the width, pairwise up.
    static func referenceRoot(_ data: [UInt8], leafCount: Int) -> SHA256Digest {
        var layer = stride(from: 0, to: data.count, by: 16384).map {
            SHA256.hash(Array(data[$0..<min($0 + 16384, data.count)]))
        }
        layer += Array(
            repeating: SHA256Digest(bytes: [UInt8](repeating: 0, count: 32))!, count: leafCount - layer.count)
        while layer.count > 1 {
            layer = stride(from: 0, to: layer.count, by: 2).map {
                SHA256.hash(layer[$0].bytes + layer[$0 + 1].bytes)
            }
        }
        return layer[0]
    }

    @Test(arguments: [
        (0, 1), (1, 1), (16384, 1), (16385, 2), (40000, 4), (40000, 64), (1 << 20, 64), (5 * 16384 + 3, 8),
    ])
    func poolRootMatchesTheReference(length: Int, leafCount: Int) throws {
        var generator = SplitMix(seed: UInt64(length * 31 + leafCount))
        let buffers = BufferPool(slotSizeBytes: 1 << 20, slotCount: 2)
        let hashers = try HashPool(threadCount: 1)
        let slot = buffers.lease()!
        let memory = buffers.bytes(of: slot)
        for i in 0..<memory.count { memory[i] = UInt8(truncatingIfNeeded: generator.next()) }
        let data = Array(memory[..<length])
        hashers.submit(slot, length: length, in: buffers, kind: .merkleRoot(leafCount: leafCount), token: 1)
        let hybrid = buffers.lease()!
        buffers.bytes(of: hybrid).copyBytes(from: memory)
        hashers.submit(
            hybrid, length: length, in: buffers,
            kind: .sha1AndMerkleRoot(sha1Length: 1 << 20, leafCount: leafCount),
            token: 2)
        var results: [UInt64: PieceDigest] = [:]
        while results.count < 2 {
            hashers.drain(into: buffers, wait: true) { results[$0.token] = $0.digest }
        }
        let root = Self.referenceRoot(data, leafCount: leafCount)
        #expect(results[1] == .merkleRoot(root))
        #expect(results[2] == .sha1AndMerkleRoot(SHA1.hash(Array(memory)), root))
    }

    /// BEP 52 roots of every shape a v2 piece check asks for, against hashes computed by Python's hashlib
    /// from the definition: byte `i` is `(i mod 251 + 9) mod 256`, and the slot past `length` holds
    /// garbage, as a piece buffer does after a file's last piece (issue #19).
    @Test(arguments: [
        // A file of one short block, and of one full block: their own root, one leaf.
        (1000, 1, "7803f522e6c4d4a391c26baf4ac7502e1bddd16d1c73ba366baa0c4902ceb71c"),
        (16384, 1, "ecc20b3b2e4a3d1a0928069b066f08d0f30d21ebcc908324d1fd6935a3d4056a"),
        // A file just over one block, or a full 32 KiB piece.
        (16385, 2, "eee68c5062fb1625ccbc6554207ec2612e31458a28ebf237e012f6f35bf46bfb"),
        (32768, 2, "81cd0403cad4084a820fc46b73ab52220e1f936d4e2f6e2946faa7dee3e09e2e"),
        // The last 32 KiB piece of a file: one short leaf, or a full leaf and a short one.
        (896, 2, "0fabf297315d6dedd8eb6c2a5d0377128dab06ceb60cb4a2f34482cae15a3175"),
        (17280, 2, "8e935cc0479b8ec5a966e16c737f1e9c9ea22b70d2d56370d66ce12953006faf"),
        // The last 64 KiB piece of a file: one short leaf, three full ones, three and a bit; a full piece.
        (100, 4, "c5b8887ed62e22a1a8990918b950af3375f3db27d91d05e2b31ab29eb9018ff7"),
        (49152, 4, "2a6547c3f19318eb7a46ccef9861b4bc2a0cc30b9cb0a6de1368a8232d4ae143"),
        (49157, 4, "34581ef70edcf1d2b805cb68e5fe589529f0875639d04bd0a644219ad07a97ab"),
        (65536, 4, "2936eecda060d0e95e1957d558f0a07d44540ef6e1a90c3b97f76eaff33cee99"),
        // 4 MiB pieces: a short last piece, and a full one.
        (20000, 256, "df04cf216df9b55a3bd9ddf62c2e6ada8786f977f66f360cc56e36f3b945f351"),
        (4 << 20, 256, "5e8c9f2e1db2b4c170b8f118f44480056b346de2b61fa479619e05e5804ca719"),
    ])
    func poolRootMatchesIndependentVectors(length: Int, leafCount: Int, hex: String) throws {
        let buffers = BufferPool(slotSizeBytes: leafCount * 16384, slotCount: 1)
        let hashers = try HashPool(threadCount: 1)
        let slot = try #require(buffers.lease())
        let memory = buffers.bytes(of: slot)
        for i in 0..<memory.count {
            memory[i] =
                i < length ? UInt8(truncatingIfNeeded: i % 251 + 9) : UInt8(truncatingIfNeeded: i &* 7 | 1)
        }
        hashers.submit(slot, length: length, in: buffers, kind: .merkleRoot(leafCount: leafCount), token: 1)
        var digest: PieceDigest?
        while digest == nil { hashers.drain(into: buffers, wait: true) { digest = $0.digest } }
        let hexDigits = Array(hex.utf8)
        let expected = try #require(
            SHA256Digest(
                bytes: stride(from: 0, to: hexDigits.count, by: 2).compactMap {
                    UInt8(String(decoding: hexDigits[$0..<$0 + 2], as: UTF8.self), radix: 16)
                }))
        #expect(digest == .merkleRoot(expected))
    }

    /// Jobs over the caller's own memory (a file mapping, in `potluck create`) hash the same as buffer
    /// jobs and hand back no slot.
    @Test func jobsOverTheCallersMemoryHashAlike() throws {
        var generator = SplitMix(seed: 7)
        let data = (0..<(5 * 16384 + 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let buffers = BufferPool(slotSizeBytes: 4096, slotCount: 1)
        let hashers = try HashPool(threadCount: 2)
        var results: [UInt64: HashResult] = [:]
        data.withUnsafeBytes { bytes in
            hashers.submit(bytes, kind: .sha1, token: 1)
            hashers.submit(bytes, kind: .sha256, token: 2)
            hashers.submit(bytes, kind: .merkleRoot(leafCount: 8), token: 3)
            hashers.submit(bytes, kind: .sha1AndMerkleRoot(sha1Length: bytes.count, leafCount: 8), token: 4)
            while results.count < 4 {
                hashers.drain(into: buffers, wait: true) { results[$0.token] = $0 }
            }
        }
        let root = Self.referenceRoot(data, leafCount: 8)
        #expect(results[1]?.digest == .sha1(SHA1.hash(data)))
        #expect(results[2]?.digest == .sha256(SHA256.hash(data)))
        #expect(results[3]?.digest == .merkleRoot(root))
        #expect(results[4]?.digest == .sha1AndMerkleRoot(SHA1.hash(data), root))
        #expect(results.values.allSatisfy { $0.slot == nil })
        #expect(buffers.freeCount == 1)
    }
}
