import NIOCore
import Testing

@testable import PotluckDaemon

/// The memory one RPC reply leaves for the next: used again, never written over while a response
/// may still be sending it, and let go once clients stop asking.
@Suite struct SpareReplyMemoryTests {
    @Test func aBufferStillBeingSentIsNotWrittenOver() {
        let spare = SpareReplyMemory()
        var first = spare.take()
        first.buffer = ByteBufferAllocator().buffer(capacity: 64)
        first.buffer.writeString("first reply")
        let sending = first.buffer
        spare.give(first)

        var second = spare.take()
        #expect(second.buffer.capacity >= 64)
        second.buffer.clear()
        second.buffer.writeString("second")
        #expect(sending.getString(at: 0, length: 11) == "first reply")
        #expect(second.buffer.readableBytes == 6)
    }

    @Test func theMemoryIsUsedAgainOnceTheResponseIsSent() {
        let spare = SpareReplyMemory()
        // As the server does: the response's copy of the buffer is gone once it is sent.
        func answer() -> UInt {
            var reply = spare.take()
            reply.buffer = ByteBufferAllocator().buffer(capacity: 4096)
            reply.buffer.writeString("reply")
            reply.bytes = Array(repeating: 1, count: 4096)
            let address = reply.buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
            spare.give(reply)
            return address
        }
        let address = answer()
        var next = spare.take()
        next.buffer.clear()
        #expect(next.buffer.withUnsafeMutableWritableBytes { UInt(bitPattern: $0.baseAddress) } == address)
        #expect(next.bytes.capacity >= 4096)
    }

    @Test func itIsLetGoWhenUnusedAndNeverKeptWhenHuge() {
        let spare = SpareReplyMemory()
        var reply = spare.take()
        reply.bytes = Array(repeating: 1, count: 1000)
        spare.give(reply)
        spare.letGo(ifUnusedFor: .seconds(60))
        #expect(spare.take().bytes.count == 1000, "used just now")
        spare.give(reply)
        spare.letGo(ifUnusedFor: .zero)
        #expect(spare.take().bytes.isEmpty)

        reply.bytes = Array(repeating: 1, count: SpareReplyMemory.largestKeptBytes + 1)
        spare.give(reply)
        #expect(spare.take().bytes.isEmpty)
    }
}
