import CommandSupport

/// A plain-text table with aligned columns, for benchmark reports that people read and paste.
struct Table {
    let headers: [String]
    private(set) var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    init(headers: [String]) { self.headers = headers }

    mutating func add(_ cells: String...) { add(cells: cells) }

    mutating func add(cells: [String]) {
        precondition(cells.count == headers.count, "a row needs one cell per column")
        rows.append(cells)
    }

    /// Markdown-compatible rendering: a pipe table reads well in a terminal and in the README.
    var rendered: String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            "| "
                + zip(cells, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(
                    separator: " | ")
                + " |"
        }
        let rule = "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n")
    }
}

extension Table {
    /// Seconds to the hundredth, "-" for none.
    static func seconds(_ value: Double?) -> String { value.map { Format.fixed($0, 2) } ?? "-" }

    /// KiB shown as MiB to the tenth, "-" for none.
    static func mebibytes(kib: Int?) -> String { kib.map { Format.fixed(Double($0) / 1024, 1) } ?? "-" }
}
