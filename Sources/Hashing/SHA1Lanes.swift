import CSHA1Lanes

/// SHA-1 of many messages at once, sixteen at a time in the lanes of AVX-512 registers.
///
/// OpenSSL hashes one message at a time; with the CPU's SHA extensions that is about 1.6 GB/s per
/// core on the machine this was measured on, and sixteen lanes of vector arithmetic reach about 5 GB/s
/// when every lane has data. Each step costs the same however many lanes have data, so it pays from
/// about `worthwhileCount` messages up: rechecks and `create`, which have many pieces at hand, not a
/// download's single piece. Where the CPU lacks AVX-512 (`isAvailable` is false) every message goes
/// through OpenSSL.
///
/// Messages of different lengths share the lanes: a lane whose message ends takes the next one, and
/// its last one or two blocks (with SHA-1's padding) are hashed from a copy.
///
/// Not thread-safe; one instance per thread.
public final class SHA1Lanes {
    public static let laneCount = Int(POTLUCK_SHA1_LANES)
    /// Whether this CPU runs the sixteen-lane kernel.
    public static let isAvailable = potluck_sha1_lanes_available() != 0
    /// From this many messages of similar length the lanes beat hashing them one by one (a step over
    /// sixteen lanes takes about five single blocks' time).
    public static let worthwhileCount = 6

    private static let blockBytes = 64
    /// Room for a message's last bytes and its padding: at most two blocks.
    private static let tailBytes = 128
    private static let initialState: [UInt32] = [
        0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0,
    ]

    /// Word k of lane j at `k * laneCount + j`, as the kernel reads it.
    private let state = UnsafeMutablePointer<UInt32>.allocate(capacity: 5 * laneCount)
    private let tails = UnsafeMutableRawPointer.allocate(byteCount: laneCount * tailBytes, alignment: 64)
    private let blocks = UnsafeMutablePointer<UnsafePointer<UInt8>?>.allocate(capacity: laneCount)
    private let fallback = StreamingHasher(.sha1)

    public init() {}

    deinit {
        state.deallocate()
        tails.deallocate()
        blocks.deallocate()
    }

    /// What a lane is hashing: which message, and how many of its blocks are left in the current part
    /// (the message's whole blocks, then its padded tail).
    private struct Lane {
        var message: Int
        var blocksLeft: Int
        var inTail: Bool
    }

    /// The SHA-1 digest of each message, in order.
    public func digests(of messages: [UnsafeRawBufferPointer]) -> [SHA1Digest] {
        guard Self.isAvailable else {
            return messages.map { message in
                fallback.update(message)
                return fallback.finishSHA1()
            }
        }
        var digests = [SHA1Digest](repeating: SHA1Digest(filling: { _ in }), count: messages.count)
        var lanes = [Lane?](repeating: nil, count: Self.laneCount)
        var nextMessage = 0
        var busyLanes = 0
        while true {
            for lane in 0..<Self.laneCount where lanes[lane] == nil && nextMessage < messages.count {
                lanes[lane] = start(messages[nextMessage], index: nextMessage, in: lane)
                nextMessage += 1
                busyLanes += 1
            }
            guard busyLanes > 0 else { return digests }
            var step = Int.max
            var readable: UnsafePointer<UInt8>?
            for case let lane? in lanes where lane.blocksLeft < step { step = lane.blocksLeft }
            for lane in 0..<Self.laneCount where lanes[lane] != nil { readable = blocks[lane] }
            // An idle lane reads a busy lane's blocks, which are there for at least `step` blocks.
            for lane in 0..<Self.laneCount where lanes[lane] == nil { blocks[lane] = readable }
            potluck_sha1_lanes(state, blocks, step)
            for index in 0..<Self.laneCount {
                guard var lane = lanes[index] else { continue }
                blocks[index] = blocks[index]! + step * Self.blockBytes
                lane.blocksLeft -= step
                if lane.blocksLeft > 0 {
                    lanes[index] = lane
                } else if !lane.inTail {
                    lanes[index] = startTail(of: messages[lane.message], index: lane.message, in: index)
                } else {
                    digests[lane.message] = digest(in: index)
                    lanes[index] = nil
                    busyLanes -= 1
                }
            }
        }
    }

    private func start(_ message: UnsafeRawBufferPointer, index: Int, in lane: Int) -> Lane {
        for word in 0..<5 { state[word * Self.laneCount + lane] = Self.initialState[word] }
        let wholeBlocks = message.count / Self.blockBytes
        guard wholeBlocks > 0 else { return startTail(of: message, index: index, in: lane) }
        blocks[lane] = message.baseAddress!.assumingMemoryBound(to: UInt8.self)
        return Lane(message: index, blocksLeft: wholeBlocks, inTail: false)
    }

    /// Copies the bytes after the message's whole blocks into the lane's tail, with SHA-1's padding: a
    /// one bit, zeros, and the message's length in bits as a big-endian 64-bit number.
    private func startTail(of message: UnsafeRawBufferPointer, index: Int, in lane: Int) -> Lane {
        let tail = tails + lane * Self.tailBytes
        let rest = message.count % Self.blockBytes
        if rest > 0 {
            tail.copyMemory(from: message.baseAddress! + (message.count - rest), byteCount: rest)
        }
        let tailBlocks = rest < Self.blockBytes - 8 ? 1 : 2
        let end = tailBlocks * Self.blockBytes
        (tail + rest).initializeMemory(as: UInt8.self, repeating: 0, count: end - rest)
        tail.storeBytes(of: 0x80, toByteOffset: rest, as: UInt8.self)
        tail.storeBytes(of: (UInt64(message.count) &* 8).bigEndian, toByteOffset: end - 8, as: UInt64.self)
        blocks[lane] = UnsafePointer(tail.assumingMemoryBound(to: UInt8.self))
        return Lane(message: index, blocksLeft: tailBlocks, inTail: true)
    }

    private func digest(in lane: Int) -> SHA1Digest {
        SHA1Digest(filling: { out in
            for word in 0..<5 {
                out.storeBytes(
                    of: state[word * Self.laneCount + lane].bigEndian, toByteOffset: 4 * word, as: UInt32.self
                )
            }
        })
    }
}
