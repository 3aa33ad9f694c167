/// Writes a `JSONValue` as compact UTF-8 text in one pass over a single buffer.
///
/// Foundation's `JSONEncoder` took most of a torrent-get's time over thousands of torrents (it builds
/// an encoder container per value). This writes what it wrote: keys sorted by their UTF-8 bytes, reals
/// as their shortest round-trip text without a trailing `.0`, non-finite reals as `null`, slashes left
/// unescaped, other characters escaped as JSON requires (quote, backslash, control characters).
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init() {}

    /// Writes into `storage`'s memory, emptied first: a reply of megabytes written into fresh memory
    /// spent more in page faults than in writing.
    init(reusing storage: [UInt8]) {
        bytes = storage
        bytes.removeAll(keepingCapacity: true)
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let value): append(value ? "true" : "false")
        case .integer(let value): writeInteger(value)
        case .real(let value) where !value.isFinite: append("null")
        case .real(let value): writeReal(value)
        case .string(let value): writeString(value)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                write(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            // `<` on strings compares NFC text (every key here) by its bytes, without a generic loop.
            let sorted = members.sorted { $0.key < $1.key }
            for (index, member) in sorted.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                writeString(member.key)
                bytes.append(UInt8(ascii: ":"))
                write(member.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// Text already written as JSON, such as a key with its colon.
    mutating func append(_ written: [UInt8]) {
        bytes.append(contentsOf: written)
    }

    mutating func append(byte: UInt8) {
        bytes.append(byte)
    }

    mutating func reserveCapacity(_ count: Int) {
        bytes.reserveCapacity(count)
    }

    /// Decimal digits, as `String(value)` writes them, without making that string.
    mutating func writeInteger(_ value: Int) {
        if value >= 0 && value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    mutating func writeBool(_ value: Bool) {
        append(value ? "true" : "false")
    }

    /// A real as `write(.real(value))` writes it: non-finite ones as `null`.
    mutating func writeFiniteOrNull(_ value: Double) {
        if value.isFinite { writeReal(value) } else { append("null") }
    }

    /// Swift's shortest text that reads back as the same value, as `JSONEncoder` writes it: `2`, not `2.0`.
    private mutating func writeReal(_ value: Double) {
        let text = value.description
        if text.hasSuffix(".0") {
            bytes.append(contentsOf: text.utf8.dropLast(2))
        } else {
            append(text)
        }
    }

    mutating func writeString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escape: copied whole, straight from their UTF-8 storage when it is
        // contiguous (a native string's always is).
        let copiedWhole =
            text.utf8.withContiguousStorageIfAvailable { utf8 in
                guard !utf8.contains(where: Self.needsEscape) else { return false }
                bytes.append(contentsOf: utf8)
                return true
            } ?? false
        if copiedWhole {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append(#"\""#)
            case UInt8(ascii: "\\"): append(#"\\"#)
            case 0x08: append(#"\b"#)
            case 0x0C: append(#"\f"#)
            case UInt8(ascii: "\n"): append(#"\n"#)
            case UInt8(ascii: "\r"): append(#"\r"#)
            case UInt8(ascii: "\t"): append(#"\t"#)
            case 0..<0x20:
                append(#"\u00"#)
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}
