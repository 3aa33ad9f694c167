import Buffers
import Hashing
import Testing
import URing

@Suite struct RingHashingTests {
    /// The reactor's pattern: pieces go to the hashing pool, the pool wakes the ring when results are
    /// ready, and the ring thread takes the results (and the buffers) back. Nothing but pointers moves.
    @Test func hashResultsWakeTheRingThread() throws {
        let ring = try Ring()
        let waker = ring.waker
        let buffers = BufferPool(slotSizeBytes: 256 * 1024, slotCount: 8)
        let hashers = try HashPool(threadCount: 2) { waker.wake() }
        var expected: [UInt64: SHA1Digest] = [:]
        for token in 0..<UInt64(8) {
            let slot = buffers.lease()!
            let memory = buffers.bytes(of: slot)
            memory.initializeMemory(as: UInt8.self, repeating: UInt8(token))
            expected[token] = SHA1.hash(UnsafeRawBufferPointer(memory))
            hashers.submit(slot, length: memory.count, in: buffers, kind: .sha1, token: token)
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while !expected.isEmpty && ContinuousClock.now < deadline {
            // No timeout of its own would end this wait early: only the pool's wake-ups do.
            try ring.submitAndWait(minimumCompletions: 1, timeout: .seconds(30))
            ring.drain { _ in }
            hashers.drain(into: buffers) { result in
                #expect(expected.removeValue(forKey: result.token).map(PieceDigest.sha1) == result.digest)
                buffers.release(result.slot!)
            }
        }
        #expect(expected.isEmpty)
    }
}
