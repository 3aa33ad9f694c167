import Glibc

/// A progress line on standard error: redrawn in place on a terminal, a plain line every few seconds
/// otherwise (so logs stay readable), and nothing at all when `quiet`.
public struct ProgressLine {
    private let isTerminal = isatty(2) == 1
    private let started = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?
    private let quiet: Bool
    private let label: String

    public init(label: String, quiet: Bool = false) {
        self.label = label
        self.quiet = quiet
    }

    /// Shows `done` of `total` bytes with the rate (the average so far unless given) and time left, at
    /// most five times a second.
    public mutating func update(
        done: Int64, total: Int64, rateBytesPerSecond: Double? = nil, extra: String = ""
    ) {
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
    public func finish() {
        if isTerminal && !quiet && lastDrawn != nil { printErrorRaw("\n") }
    }
}
