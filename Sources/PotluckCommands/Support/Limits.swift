/// Parsers for the limits the CLI takes: rates and durations.
enum LimitParsing {
    /// A rate in bytes per second: 500K, 2M, 1G (binary multiples; KiB/MiB/GiB too, and an optional
    /// "/s"), or a plain number of bytes; 0 means no limit. Nil if malformed or negative.
    static func rateBytesPerSecond(_ text: String) -> Int? {
        var lower = text.lowercased()
        if lower.hasSuffix("/s") { lower.removeLast(2) }
        let suffixes: [(String, Int)] = [
            ("kib", 10), ("mib", 20), ("gib", 30), ("kb", 10), ("mb", 20), ("gb", 30), ("k", 10), ("m", 20),
            ("g", 30), ("b", 0),
        ]
        for (suffix, shift) in suffixes where lower.hasSuffix(suffix) {
            guard let value = Double(lower.dropLast(suffix.count)), value >= 0, value < 1e6 else {
                return nil
            }
            return Int(value * Double(1 << shift))
        }
        guard let value = Int(lower), value >= 0 else { return nil }
        return value
    }

    /// A duration in seconds: 90, 90s, 15m, 2h, 1d. Nil if malformed or negative.
    static func seconds(_ text: String) -> Int? {
        let lower = text.lowercased()
        let units: [(String, Int)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (unit, scale) in units where lower.hasSuffix(unit) {
            guard let value = Int(lower.dropLast(unit.count)), value >= 0, value < Int(Int32.max) else {
                return nil
            }
            return value * scale
        }
        guard let value = Int(lower), value >= 0 else { return nil }
        return value
    }
}
