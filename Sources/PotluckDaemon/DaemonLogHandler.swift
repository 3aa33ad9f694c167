import Foundation
import Glibc
public import Logging
import Synchronization

/// The daemon's log: one line per event on standard error, for a terminal, a file or journald.
///
/// Under systemd (standard error is the journal's stream, as `JOURNAL_STREAM` says) a line starts with
/// its syslog priority (`<6>`), which journald reads as the entry's level, and carries no time, which
/// journald adds; elsewhere it starts with the time in UTC and the level's name. Never colours.
public struct DaemonLogHandler: LogHandler {
    /// The level below which nothing is logged, shared by every logger of the daemon so that a
    /// reloaded configuration changes it at once.
    public final class Threshold: Sendable {
        private let rawLevel: Atomic<Int>

        public init(_ level: Logger.Level) { rawLevel = Atomic(Self.levels.firstIndex(of: level)!) }

        public var level: Logger.Level {
            get { Self.levels[rawLevel.load(ordering: .relaxed)] }
            set { rawLevel.store(Self.levels.firstIndex(of: newValue)!, ordering: .relaxed) }
        }

        private static let levels = Logger.Level.allCases
    }

    /// How lines begin.
    public enum LineStyle: Sendable {
        /// `<priority>` for journald.
        case journal
        /// An ISO 8601 time and the level's name.
        case timestamped
    }

    let label: String
    let threshold: Threshold
    let style: LineStyle
    let write: @Sendable (String) -> Void
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(
        label: String, threshold: Threshold, style: LineStyle = Self.standardErrorStyle(),
        write: @escaping @Sendable (String) -> Void = Self.writeToStandardError
    ) {
        self.label = label
        self.threshold = threshold
        self.style = style
        self.write = write
    }

    public var logLevel: Logger.Level {
        get { threshold.level }
        set { threshold.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let given = event.metadata { fields.merge(given) { $1 } }
        // One event, one line: a message with line breaks would otherwise look like several events.
        var line = event.message.description.replacingOccurrences(of: "\n", with: " ")
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        switch style {
        case .journal: write("<\(Self.syslogPriority(event.level))>\(label): \(line)\n")
        case .timestamped:
            write("\(Date().formatted(Self.timeFormat)) \(event.level) \(label): \(line)\n")
        }
    }

    /// UTC to the millisecond, such as `2026-12-03T14:47:55.123Z`.
    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// syslog's priorities (RFC 5424), which journald maps to its levels.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// `.journal` when standard error is the stream systemd named in `JOURNAL_STREAM` (device:inode).
    public static func standardErrorStyle(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> LineStyle {
        var status = stat()
        guard let stream = environment["JOURNAL_STREAM"], fstat(STDERR_FILENO, &status) == 0 else {
            return .timestamped
        }
        return stream == "\(status.st_dev):\(status.st_ino)" ? .journal : .timestamped
    }

    /// Whole lines in one write each, so lines from different threads never interleave.
    public static let writeToStandardError: @Sendable (String) -> Void = { line in
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
