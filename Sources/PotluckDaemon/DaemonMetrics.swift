import Engine
import Foundation
internal import Prometheus

/// The daemon's Prometheus metrics, served at `/metrics` in the text format.
///
/// Counts and rates are taken from the engine once a second by the bookkeeping, so a scrape costs one
/// rendering and never waits for the engine; RPC calls are counted as they are answered. Series exist
/// from the start (at zero), so a dashboard sees "none" rather than "unknown".
public final class DaemonMetrics: Sendable {
    /// What `potluck_torrents{state}` reports, as Transmission's clients name a torrent's state.
    public enum TorrentState: String, CaseIterable, Sendable {
        case stopped, starting, checking, downloading, seeding, error

        init(_ activity: TorrentActivity?) {
            switch activity {
            case nil, .starting, .moving: self = .starting
            case .checking: self = .checking
            case .downloading, .fetchingMetadata: self = .downloading
            case .seeding: self = .seeding
            case .paused, .finished: self = .stopped
            case .failed: self = .error
            }
        }
    }

    private let registry = PrometheusCollectorRegistry()
    private let torrents: [TorrentState: Gauge]
    private let uploadedBytes: Counter
    private let downloadedBytes: Counter
    private let uploadRate: Gauge
    private let downloadRate: Gauge
    private let connectedPeers: Gauge
    private let uploadLimit: Gauge
    private let downloadLimit: Gauge
    private let connectionLimit: Gauge
    private let ringOperations: Gauge

    public init(version: String = potluckVersion, startedAt: Date = Date()) {
        var torrents: [TorrentState: Gauge] = [:]
        for state in TorrentState.allCases {
            torrents[state] = registry.makeGauge(
                descriptor: Self.named(
                    "potluck_torrents",
                    "Torrents by state (stopped, starting, checking, downloading, seeding, error)."),
                labels: [("state", state.rawValue)])
        }
        self.torrents = torrents
        uploadedBytes = registry.makeCounter(
            descriptor: Self.named(
                "potluck_uploaded_bytes_total", "Payload bytes uploaded to peers since the daemon started."))
        downloadedBytes = registry.makeCounter(
            descriptor: Self.named(
                "potluck_downloaded_bytes_total",
                "Payload bytes downloaded from peers since the daemon started."))
        uploadRate = registry.makeGauge(
            descriptor: Self.named("potluck_upload_rate_bytes", "Payload upload rate, bytes per second."))
        downloadRate = registry.makeGauge(
            descriptor: Self.named("potluck_download_rate_bytes", "Payload download rate, bytes per second."))
        connectedPeers = registry.makeGauge(
            descriptor: Self.named("potluck_peers", "Peers by connection state."),
            labels: [("state", "connected")])
        let rateLimit = Self.named(
            "potluck_rate_limit_bytes",
            "Payload rate limit for all torrents together, bytes per second (0: none).")
        uploadLimit = registry.makeGauge(descriptor: rateLimit, labels: [("direction", "upload")])
        downloadLimit = registry.makeGauge(descriptor: rateLimit, labels: [("direction", "download")])
        connectionLimit = registry.makeGauge(
            descriptor: Self.named(
                "potluck_connection_limit", "Peer connections allowed at once, all torrents together."))
        ringOperations = registry.makeGauge(
            descriptor: Self.named(
                "potluck_ring_operations_in_flight",
                "io_uring operations submitted and not yet completed, all reactors together."))
        registry.makeGauge(
            descriptor: Self.named("potluck_build_info", "Always 1; the version in a label."),
            labels: [("version", version)]
        ).set(1.0)
        registry.makeGauge(
            descriptor: Self.named(
                "process_start_time_seconds", "Start time of the process since the Unix epoch, seconds.")
        ).set(startedAt.timeIntervalSince1970)
    }

    /// What the bookkeeping saw in one look.
    struct Sample {
        var states: [TorrentState: Int] = [:]
        /// Payload bytes moved since the previous look.
        var uploadedBytes: Int64 = 0
        var downloadedBytes: Int64 = 0
        var uploadRateBytesPerSecond = 0.0
        var downloadRateBytesPerSecond = 0.0
        var connectedPeers = 0
        /// The engine's limits in force (0: none).
        var uploadLimitBytesPerSecond = 0
        var downloadLimitBytesPerSecond = 0
        var connectionLimit = 0
        var ringOperationsInFlight = 0
    }

    func record(_ sample: Sample) {
        for (state, gauge) in torrents { gauge.set(Int64(sample.states[state, default: 0])) }
        if sample.uploadedBytes > 0 { uploadedBytes.increment(by: sample.uploadedBytes) }
        if sample.downloadedBytes > 0 { downloadedBytes.increment(by: sample.downloadedBytes) }
        uploadRate.set(sample.uploadRateBytesPerSecond)
        downloadRate.set(sample.downloadRateBytesPerSecond)
        connectedPeers.set(Int64(sample.connectedPeers))
        uploadLimit.set(Int64(sample.uploadLimitBytesPerSecond))
        downloadLimit.set(Int64(sample.downloadLimitBytesPerSecond))
        connectionLimit.set(Int64(sample.connectionLimit))
        ringOperations.set(Int64(sample.ringOperationsInFlight))
    }

    /// Counts an answered RPC call: `method` nil (no known method, or arguments that did not decode)
    /// is counted as `invalid`.
    func countCall(method: String?, succeeded: Bool) {
        registry.makeCounter(
            descriptor: Self.named(
                "potluck_rpc_requests_total", "Transmission RPC calls answered, by method and result."),
            labels: [("method", method ?? "invalid"), ("result", succeeded ? "success" : "error")]
        ).increment()
    }

    /// A metric's full name (units already in it, as Prometheus names them) and its HELP text.
    private static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The text exposition format (version 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
