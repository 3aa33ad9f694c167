import Glibc

/// A progress line on standard error: redrawn in place on a terminal, a plain line every few seconds
/// otherwise (so logs stay readable), and nothing at all when `quiet`.
struct ProgressLine {
    private let isTerminal = isatty(2) == 1
    private let started = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?
    private let quiet: Bool
    private let label: String

    init(label: String, quiet: Bool = false) {
        self.label = label
        self.quiet = quiet
    }

    /// Shows `done` of `total` bytes with the rate (the average so far unless given) and time left, at
    /// most five times a second.
    mutating func update(done: Int64, total: Int64, rateBytesPerSecond: Double? = nil, extra: String = "") {
        guard !quiet else { return }
        let now = ContinuousClock.now
        let interval: Duration = isTerminal ? .milliseconds(200) : .seconds(5)
        if let lastDrawn, now - lastDrawn < interval, done < total { return }
        lastDrawn = now
        let elapsed = seconds(now - started)
        let rate = rateBytesPerSecond ?? (elapsed > 0 ? Double(done) / elapsed : 0)
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        var text =
            "\(label) \(Format.fixed(fraction * 100, 1))%  \(Format.size(done)) / \(Format.size(total))"
        text += "  \(Format.size(Int64(rate)))/s  ETA \(Format.duration(remaining))"
        if !extra.isEmpty { text += "  " + extra }
        if isTerminal {
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            printErrorRaw("\r\u{1B}[2K[\(bar)] " + text)
        } else {
            printError(text)
        }
    }

    /// Ends the line on a terminal.
    func finish() {
        if isTerminal && !quiet && lastDrawn != nil { printErrorRaw("\n") }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func printErrorRaw(_ text: String) {
    var text = text
    text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}

extension Format {
    /// 1.5 GiB, 300 MiB, 12 KiB: binary units, one decimal.
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : "\(fixed(value, 1)) \(units[unit])"
    }

    /// 1:05:09, 4:07, 0:03.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let total = Int(seconds.rounded())
        let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60)
        let twoDigits = { (value: Int) in value < 10 ? "0\(value)" : "\(value)" }
        return hours > 0
            ? "\(hours):\(twoDigits(minutes)):\(twoDigits(secs))" : "\(minutes):\(twoDigits(secs))"
    }
}
