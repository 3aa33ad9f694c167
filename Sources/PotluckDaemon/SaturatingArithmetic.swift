extension Int {
    /// `self * factor`, held at the nearest bound instead of trapping: the numbers multiplied here (kB/s
    /// to bytes, minutes to seconds) come from clients and from saved state, and a huge one must not
    /// crash the daemon at every start.
    func saturatingProduct(_ factor: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: factor)
        guard overflow else { return product }
        return (self < 0) != (factor < 0) ? .min : .max
    }
}
