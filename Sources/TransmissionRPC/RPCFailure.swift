/// An RPC call that did not succeed: its message becomes the reply's `result`, which clients show as is.
///
/// Backends throw it to choose the message; any other error thrown by a backend is reported with its
/// description.
public struct RPCFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
