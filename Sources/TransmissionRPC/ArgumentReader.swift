/// Typed access to a request's `arguments`: absent and null read as nil, a value of the wrong type
/// throws an ``RPCFailure`` that names the argument.
struct ArgumentReader {
    let arguments: [String: JSONValue]

    private func present(_ key: String) -> JSONValue? {
        guard let value = arguments[key], value != .null else { return nil }
        return value
    }

    func integer(_ key: String) throws(RPCFailure) -> Int? {
        try present(key).map { value throws(RPCFailure) in try Self.integer(value, named: key) }
    }

    func real(_ key: String) throws(RPCFailure) -> Double? {
        try present(key).map { value throws(RPCFailure) in try Self.real(value, named: key) }
    }

    func bool(_ key: String) throws(RPCFailure) -> Bool? {
        try present(key).map { value throws(RPCFailure) in try Self.bool(value, named: key) }
    }

    func string(_ key: String) throws(RPCFailure) -> String? {
        try present(key).map { value throws(RPCFailure) in try Self.string(value, named: key) }
    }

    func strings(_ key: String) throws(RPCFailure) -> [String]? {
        guard let value = present(key) else { return nil }
        guard let list = value.arrayValue else {
            throw RPCFailure("argument '\(key)' must be a list of strings")
        }
        return try list.map { element throws(RPCFailure) in
            guard let text = element.stringValue else {
                throw RPCFailure("argument '\(key)' must be a list of strings")
            }
            return text
        }
    }

    func integers(_ key: String) throws(RPCFailure) -> [Int]? {
        guard let value = present(key) else { return nil }
        guard let list = value.arrayValue else {
            throw RPCFailure("argument '\(key)' must be a list of integers")
        }
        return try list.map { element throws(RPCFailure) in
            guard let number = element.integerValue else {
                throw RPCFailure("argument '\(key)' must be a list of integers")
            }
            return number
        }
    }

    /// A value that must be one of an enumeration's raw values, such as `seedRatioMode`.
    func enumeration<Value: RawRepresentable & CaseIterable>(_ key: String) throws(RPCFailure) -> Value?
    where Value.RawValue == Int {
        guard let number = try integer(key) else { return nil }
        guard let value = Value(rawValue: number) else {
            let allowed = Value.allCases.map { String($0.rawValue) }.joined(separator: ", ")
            throw RPCFailure("argument '\(key)' must be one of \(allowed)")
        }
        return value
    }

    static func integer(_ value: JSONValue, named key: String) throws(RPCFailure) -> Int {
        guard let number = value.integerValue else {
            throw RPCFailure("argument '\(key)' must be an integer")
        }
        return number
    }

    static func real(_ value: JSONValue, named key: String) throws(RPCFailure) -> Double {
        guard let number = value.realValue else { throw RPCFailure("argument '\(key)' must be a number") }
        return number
    }

    static func bool(_ value: JSONValue, named key: String) throws(RPCFailure) -> Bool {
        guard let flag = value.boolValue else { throw RPCFailure("argument '\(key)' must be a boolean") }
        return flag
    }

    static func string(_ value: JSONValue, named key: String) throws(RPCFailure) -> String {
        guard let text = value.stringValue else { throw RPCFailure("argument '\(key)' must be a string") }
        return text
    }
}
