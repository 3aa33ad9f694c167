import CommandSupport
import Foundation
import Hashing

/// Tables, JSON and an SVG plot of swarm benchmark results, shared by `bench compare`, `bench
/// download` and `bench swarm`.
enum BenchReport {
    /// The libtorrent measurement in the same role that the others are compared with.
    static func reference(_ results: [TransferResult]) -> TransferResult? {
        results.first { $0.client == .libtorrent && $0.ok }
    }

    static func ratio(_ value: Double, _ base: Double?) -> String {
        guard let base, base > 0, value > 0 else { return "-" }
        return Format.fixed(value / base, 2) + "×"
    }

    static func leecherTable(_ results: [TransferResult]) -> Table {
        let reference = reference(results)
        let shaped = results.contains { $0.linkRateBitsPerSecond != nil }
        var table = Table(
            headers: [
                "client", "version", "result", "MB/s", "CPU s/GiB", "peak RSS", "first piece s",
                "speed vs libtorrent", "CPU vs libtorrent",
            ] + (shaped ? ["link use"] : []))
        for result in results {
            guard result.ok else {
                table.add(
                    cells: [result.label, result.version, result.status]
                        + Array(repeating: "-", count: shaped ? 7 : 6))
                continue
            }
            table.add(
                cells: [
                    result.label, result.version, "ok", Format.fixed(result.megabytesPerSecond, 1),
                    Format.fixed(result.cpuSecondsPerGiB, 2),
                    Format.size(Int64(result.peakResidentKiB) * 1024),
                    result.firstPieceSeconds.map { Format.fixed($0, 2) } ?? "-",
                    ratio(result.megabytesPerSecond, reference?.megabytesPerSecond),
                    ratio(result.cpuSecondsPerGiB, reference?.cpuSecondsPerGiB),
                ] + (shaped ? [result.linkUtilisation.map(Format.percent) ?? "-"] : []))
        }
        return table
    }

    static func seederTable(_ results: [TransferResult]) -> Table {
        let reference = reference(results)
        let shaped = results.contains { $0.linkRateBitsPerSecond != nil }
        var table = Table(
            headers: [
                "seeder", "version", "result", "leechers", "upload MB/s", "CPU s/GiB", "peak RSS",
                "speed vs libtorrent", "CPU vs libtorrent",
            ] + (shaped ? ["link use"] : []))
        for result in results {
            guard result.ok else {
                table.add(
                    cells: [result.label, result.version, result.status, "\(result.leechers)"]
                        + Array(repeating: "-", count: shaped ? 6 : 5))
                continue
            }
            table.add(
                cells: [
                    result.label, result.version, "ok", "\(result.leechers)",
                    Format.fixed(result.megabytesPerSecond, 1),
                    Format.fixed(result.cpuSecondsPerGiB, 2),
                    Format.size(Int64(result.peakResidentKiB) * 1024),
                    ratio(result.megabytesPerSecond, reference?.megabytesPerSecond),
                    ratio(result.cpuSecondsPerGiB, reference?.cpuSecondsPerGiB),
                ] + (shaped ? [result.linkUtilisation.map(Format.percent) ?? "-"] : []))
        }
        return table
    }

    /// A client's results over several runs: how many succeeded, and the medians of those.
    struct Summary {
        let client: ClientKind
        let version: String
        let ok: Int
        let total: Int
        let megabytesPerSecond: Double
        let cpuSecondsPerGiB: Double
        let peakResidentKiB: Int
        let firstPieceSeconds: Double?
    }

    /// Per client kind, in order of first appearance.
    static func medians(_ results: [TransferResult]) -> [Summary] {
        var order: [ClientKind] = []
        for result in results where !order.contains(result.client) { order.append(result.client) }
        return order.map { client in
            let mine = results.filter { $0.client == client }
            let ok = mine.filter(\.ok)
            return Summary(
                client: client, version: mine.first?.version ?? "-", ok: ok.count, total: mine.count,
                megabytesPerSecond: median(ok.map(\.megabytesPerSecond)) ?? 0,
                cpuSecondsPerGiB: median(ok.map(\.cpuSecondsPerGiB)) ?? 0,
                peakResidentKiB: Int(median(ok.map { Double($0.peakResidentKiB) }) ?? 0),
                firstPieceSeconds: median(ok.compactMap(\.firstPieceSeconds)))
        }
    }

    static func summaryTable(_ rows: [Summary]) -> Table {
        let reference = rows.first { $0.client == .libtorrent && $0.ok > 0 }
        var table = Table(
            "client", "version", "ok", "MB/s", "CPU s/GiB", "peak RSS", "first piece s",
            "speed vs libtorrent",
            "CPU vs libtorrent")
        for row in rows {
            guard row.ok > 0 else {
                table.add(row.client.rawValue, row.version, "0/\(row.total)", "-", "-", "-", "-", "-", "-")
                continue
            }
            table.add(
                row.client.rawValue, row.version, "\(row.ok)/\(row.total)",
                Format.fixed(row.megabytesPerSecond, 1),
                Format.fixed(row.cpuSecondsPerGiB, 2), Format.size(Int64(row.peakResidentKiB) * 1024),
                row.firstPieceSeconds.map { Format.fixed($0, 2) } ?? "-",
                ratio(row.megabytesPerSecond, reference?.megabytesPerSecond),
                ratio(row.cpuSecondsPerGiB, reference?.cpuSecondsPerGiB))
        }
        return table
    }

    /// One result as JSON; failed ones keep their client, version and result, and nothing measured.
    static func json(_ result: TransferResult, among results: [TransferResult]) -> [String: Any] {
        var row: [String: Any] = [
            "role": result.role.rawValue, "client": result.client.rawValue, "label": result.label,
            "version": result.version, "result": result.status,
        ]
        if result.role == .seeder { row["leechers"] = result.leechers }
        guard result.ok else { return row }
        let reference = reference(results)
        row["bytes"] = result.bytes
        row["seconds"] = result.wallSeconds
        row["megabytes_per_second"] = result.megabytesPerSecond
        row["cpu_seconds"] = result.cpuSeconds
        row["cpu_seconds_per_gib"] = result.cpuSecondsPerGiB
        row["peak_rss_kib"] = result.peakResidentKiB
        if let first = result.firstPieceSeconds { row["first_piece_seconds"] = first }
        if let rate = result.linkRateBitsPerSecond {
            row["link_bits_per_second"] = rate
            row["link_utilisation"] = result.linkUtilisation
        }
        if let reference, reference.megabytesPerSecond > 0, reference.cpuSecondsPerGiB > 0 {
            row["speed_vs_libtorrent"] = result.megabytesPerSecond / reference.megabytesPerSecond
            row["cpu_vs_libtorrent"] = result.cpuSecondsPerGiB / reference.cpuSecondsPerGiB
        }
        row["samples"] = result.samples.map { [$0.seconds, Double($0.bytes)] }
        row["samples_are"] =
            result.progressSource == "verified"
            ? "bytes of verified pieces, as the client reports them" : "payload bytes allocated on disk"
        return row
    }

    /// Writes `{"date", "cores", ...header, "leechers": [...], "seeders": [...]}`.
    static func writeJSON(
        _ path: String, header: [String: Any], leechers: [TransferResult], seeders: [TransferResult]
    ) {
        var object = header
        object["date"] = ISO8601DateFormatter().string(from: Date())
        object["cores"] = HashPool.coreCount
        object["leechers"] = leechers.map { json($0, among: leechers) }
        object["seeders"] = seeders.map { json($0, among: seeders) }
        // `results` is the leecher list under the name `bench download` always used.
        object["results"] = object["leechers"]
        writeJSONReport(object, to: path)
    }

    // MARK: Plot

    static let colors: [ClientKind: String] = [
        .potluck: "#d1495b", .libtorrent: "#00798c", .transmission: "#66a182", .aria2: "#edae49",
    ]

    /// Throughput in MB/s over time: the bytes on disk differenced over about half a second.
    static func throughput(_ samples: [Sample]) -> [(seconds: Double, megabytesPerSecond: Double)] {
        // From the origin: a transfer shorter than one sampling interval still draws a line.
        var points: [(Double, Double)] = samples.isEmpty ? [] : [(0, 0)]
        var start = 0
        for (index, sample) in samples.enumerated() where index > 0 {
            while start < index - 1 && sample.seconds - samples[start + 1].seconds >= 0.5 { start += 1 }
            let span = sample.seconds - samples[start].seconds
            guard span > 0 else { continue }
            points.append((sample.seconds, Double(sample.bytes - samples[start].bytes) / span / 1e6))
        }
        return points
    }

    /// A round axis maximum: 1, 2 or 5 times a power of ten, at least `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        var step = 1.0
        while step * 10 <= value { step *= 10 }
        while step > value { step /= 10 }
        for factor in [1.0, 2.0, 5.0, 10.0] where step * factor >= value { return step * factor }
        return step * 10
    }

    /// An SVG with one panel per role that has samples: throughput over time, one line per client.
    static func svg(title: String, panels: [(title: String, results: [TransferResult])]) -> String {
        let width = 860.0
        let panelHeight = 300.0
        let left = 70.0
        let right = 190.0
        let top = 50.0
        let plotWidth = width - left - right
        let plotHeight = panelHeight - 70
        let shown = panels.filter { !$0.results.isEmpty }
        let height = top + Double(shown.count) * panelHeight + 10
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="15" font-weight="bold">\(escape(title))</text>

            """
        for (index, panel) in shown.enumerated() {
            let y0 = top + Double(index) * panelHeight + 20
            let series = panel.results.map { ($0, throughput($0.samples)) }
            let maxSeconds = niceCeiling(series.flatMap { $0.1.map(\.seconds) }.max() ?? 1)
            let maxRate = niceCeiling((series.flatMap { $0.1.map(\.megabytesPerSecond) }.max() ?? 1) * 1.05)
            func x(_ seconds: Double) -> Double { left + seconds / maxSeconds * plotWidth }
            func y(_ rate: Double) -> Double { y0 + plotHeight - min(rate, maxRate) / maxRate * plotHeight }
            out += "<text x=\"\(left)\" y=\"\(y0 - 8)\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
            for tick in 0...5 {
                let rate = maxRate * Double(tick) / 5
                let seconds = maxSeconds * Double(tick) / 5
                out += "<line x1=\"\(left)\" y1=\"\(y(rate))\" x2=\"\(left + plotWidth)\" y2=\"\(y(rate))\" "
                out += "stroke=\"#ddd\"/>\n"
                out += "<text x=\"\(left - 6)\" y=\"\(y(rate) + 4)\" text-anchor=\"end\">"
                out += "\(Format.fixed(rate, rate < 10 ? 1 : 0))</text>\n"
                out += "<text x=\"\(x(seconds))\" y=\"\(y0 + plotHeight + 16)\" text-anchor=\"middle\">"
                out += "\(Format.fixed(seconds, seconds < 10 ? 1 : 0))</text>\n"
            }
            out += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\" "
            out += "fill=\"none\" stroke=\"#444\"/>\n"
            out += "<text x=\"\(left + plotWidth / 2)\" y=\"\(y0 + plotHeight + 34)\" text-anchor=\"middle\">"
            out += "seconds since the client started</text>\n"
            out += "<text transform=\"translate(\(left - 48),\(y0 + plotHeight / 2)) rotate(-90)\" "
            out += "text-anchor=\"middle\">MB/s</text>\n"
            for (number, (result, points)) in series.enumerated() {
                let color = colors[result.client] ?? "#333"
                let dash = number >= 4 ? " stroke-dasharray=\"6 3\"" : ""
                if points.count > 1 {
                    let path = points.map {
                        "\(Format.fixed(x($0.seconds), 1)),\(Format.fixed(y($0.megabytesPerSecond), 1))"
                    }
                    out +=
                        "<polyline class=\"series\" data-client=\"\(result.client.rawValue)\" fill=\"none\" "
                    out +=
                        "stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\"\(path.joined(separator: " "))\"/>\n"
                }
                let legendY = y0 + 14 + Double(number) * 18
                out +=
                    "<line x1=\"\(left + plotWidth + 14)\" y1=\"\(legendY - 4)\" x2=\"\(left + plotWidth + 34)\" "
                out += "y2=\"\(legendY - 4)\" stroke=\"\(color)\" stroke-width=\"3\"\(dash)/>\n"
                let status = result.ok ? "" : " (\(result.status))"
                out +=
                    "<text x=\"\(left + plotWidth + 40)\" y=\"\(legendY)\">\(escape(result.label + status))</text>\n"
            }
        }
        return out + "</svg>\n"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    static func writePlot(_ path: String, title: String, panels: [(title: String, results: [TransferResult])])
    {
        let text = svg(title: title, panels: panels)
        if !FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) {
            printError("potluck: cannot write \(path)")
        }
    }
}

/// Writes a benchmark's `--json` report (keys sorted, so runs diff cleanly); says so on standard error
/// if it cannot.
func writeJSONReport(_ object: [String: Any], to path: String) {
    guard
        let data = try? JSONSerialization.data(
            withJSONObject: object, options: [.prettyPrinted, .sortedKeys]),
        FileManager.default.createFile(atPath: path, contents: data)
    else {
        printError("potluck: cannot write \(path)")
        return
    }
}
