import Foundation

/// A JSON value as the RPC reads and writes it.
///
/// Integers and reals are kept apart because clients care: transmission-remote reads counters such as
/// `rateDownload` only when they are JSON integers, and Transmission itself writes ratios as reals.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int)
    case real(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .real(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        // JSON has no infinity or NaN: a backend's division by zero becomes null, not a failed reply.
        case .real(let value) where !value.isFinite: try container.encodeNil()
        case .real(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue {
    /// Parses UTF-8 JSON text; nil when it is not well-formed JSON (including nesting deeper than 512).
    ///
    /// Through `JSONSerialization`, not `JSONDecoder`: decoding a value by trying one type after another
    /// threw up to five errors per value, 1.7 s of CPU per MiB of `[{},{},…]` (half a minute for a
    /// 16 MiB request body, before its method was even known); this takes a seventeenth of that.
    /// Numbers come out as the decoder made them: an integer when the value is one exactly.
    public init?(parsing bytes: some Collection<UInt8>) {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed),
            let value = JSONValue(parsed: parsed)
        else { return nil }
        self = value
    }

    /// The value `JSONSerialization` made (its nesting bounded at 512, so the recursion is too).
    private init?(parsed: Any) {
        switch parsed {
        case is NSNull:
            self = .null
        case let string as String:
            self = .string(string)
        case let number as NSNumber:
            self = Self.number(number)
        case let array as [Any]:
            var items: [JSONValue] = []
            items.reserveCapacity(array.count)
            for element in array {
                guard let item = JSONValue(parsed: element) else { return nil }
                items.append(item)
            }
            self = .array(items)
        case let object as [String: Any]:
            var members: [String: JSONValue] = [:]
            members.reserveCapacity(object.count)
            for (key, element) in object {
                guard let member = JSONValue(parsed: element) else { return nil }
                members[key] = member
            }
            self = .object(members)
        default:
            return nil
        }
    }

    private static func number(_ number: NSNumber) -> JSONValue {
        switch String(cString: number.objCType) {
        case "c": return .bool(number.boolValue)
        case "d", "f":
            let value = number.doubleValue
            return Int(exactly: value).map { .integer($0) } ?? .real(value)
        // Unsigned: past the largest Int, a real (as the decoder read it), not a wrapped negative.
        case "Q" where number.uint64Value > UInt64(Int.max): return .real(number.doubleValue)
        default: return .integer(number.intValue)
        }
    }

    /// Compact UTF-8 JSON with keys sorted, as Transmission writes them, and slashes left unescaped so
    /// that paths read as paths.
    public var serialized: [UInt8] {
        var writer = JSONWriter()
        writer.write(self)
        return writer.bytes
    }

    /// The value as an integer: a JSON integer, or a real with no fractional part.
    public var integerValue: Int? {
        switch self {
        case .integer(let value): value
        case .real(let value) where value.rounded() == value && abs(value) < 0x1p63: Int(value)
        default: nil
        }
    }

    /// The value as a real: a JSON real or integer.
    public var realValue: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }

    /// The value as a boolean: `true`/`false`, or the integers 0 and 1 that older clients send.
    public var boolValue: Bool? {
        switch self {
        case .bool(let value): value
        case .integer(0): false
        case .integer(1): true
        default: nil
        }
    }

    public var stringValue: String? {
        if case .string(let value) = self { value } else { nil }
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { value } else { nil }
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { value } else { nil }
    }
}
