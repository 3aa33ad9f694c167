import Buffers
import Testing

@testable import Hashing

@Suite struct HashPoolTests {
    /// Random pieces of random lengths, hashed by four workers while the submitter keeps the pool full:
    /// every result must equal one-shot hashing of what the buffer held when it was submitted.
    @Test func poolMatchesOneShotHashingUnderConcurrency() throws {
        var generator = SplitMix(seed: 42)
        let buffers = BufferPool(slotSizeBytes: 64 * 1024, slotCount: 8)
        let hashers = try HashPool(threadCount: 4)
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
