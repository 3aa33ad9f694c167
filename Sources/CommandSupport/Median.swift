// Medians of repeated measurements: every benchmark that repeats a run reports one of these two.

/// The middle of `values`; for an even count, the mean of the two middle values. Nil when empty.
public func median(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// The element whose `key` is the median, for results that are reported whole (a run's wall time beside
/// its CPU time and memory). Two runs cannot be averaged into one, so for an even count this is the upper
/// of the two middle elements. Nil when empty.
public func medianElement<Element>(_ elements: [Element], by key: (Element) -> Double) -> Element? {
    guard !elements.isEmpty else { return nil }
    return elements.sorted { key($0) < key($1) }[elements.count / 2]
}
