/// Stands in for the kernel under a ring made with `Ring(simulator:)`, so that a test runs the real
/// engine against simulated sockets, disks and time: deterministic, and far faster than real time.
///
/// The ring hands the simulator every operation and takes completions from it; waiting is the
/// simulator running its clock on to its next event. Everything happens on the ring's thread.
public protocol RingSimulator: AnyObject {
    /// The optional ring features the simulation offers (the engine adapts, as to an older kernel).
    var features: RingFeatures { get }
    /// Nanoseconds of simulated time since the simulation began.
    var nanoseconds: UInt64 { get }
    /// One operation, in submission order; `.link` ties the next operation to it as in io_uring.
    func submit(_ operation: Operation, token: CompletionToken, flags: SubmissionFlags)
    /// Runs simulated time on until at least `minimumCompletions` completions are ready, `timeout`
    /// has passed, or nothing is left to happen.
    func wait(minimumCompletions: Int, timeout: Duration?)
    /// Moves the completions ready now, oldest first, into `completions`.
    func takeCompletions(into completions: inout [Completion])
    /// `shutdown(2)` of a connection: its pending operations end, and the other side sees it close.
    func shutdown(socket fd: Int32)
}
