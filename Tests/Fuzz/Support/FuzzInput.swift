// Shared by the libFuzzer harnesses that read their input as a script. Built by run.sh, not by SwiftPM.

/// Consumes fuzz bytes front to back, yielding zeros once they run out, so that every prefix of an input
/// is a complete script and the fuzzer can grow one a byte at a time.
struct FuzzInput {
    private let data: [UInt8]
    private var position = 0

    init(_ data: [UInt8]) { self.data = data }

    /// The harness's input as an array (libFuzzer passes a null pointer for the empty input).
    init(_ pointer: UnsafePointer<UInt8>?, count: Int) {
        self.init(pointer.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    }

    var isAtEnd: Bool { position >= data.count }

    mutating func byte() -> UInt8 {
        guard position < data.count else { return 0 }
        defer { position += 1 }
        return data[position]
    }

    /// Two bytes, big-endian.
    mutating func uint16() -> UInt16 {
        UInt16(byte()) << 8 | UInt16(byte())
    }

    /// A position (two bytes) and a new value (one byte), while at least three bytes remain.
    mutating func edit(count: Int) -> (position: Int, value: UInt8)? {
        guard data.count - position >= 3, count > 0 else { return nil }
        let offset = (Int(byte()) << 8 | Int(byte())) % count
        return (offset, byte())
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in byte() }
    }

    /// Up to `count` bytes, fewer if the input ends first (no zero filling).
    mutating func prefix(_ count: Int) -> [UInt8] {
        let end = min(data.count, position + max(0, count))
        defer { position = max(position, end) }
        return position < end ? Array(data[position..<end]) : []
    }

    /// Everything not consumed yet.
    mutating func rest() -> [UInt8] {
        prefix(data.count)
    }
}
