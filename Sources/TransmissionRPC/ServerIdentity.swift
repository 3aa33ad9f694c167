/// What session-get says about the server: the Transmission release it speaks as and the RPC versions.
public struct ServerIdentity: Sendable, Hashable {
    /// The Transmission release whose RPC this implements; clients parse the leading number.
    public static let transmissionVersion = "4.0.6"

    /// `version`, such as `4.0.6 (Potluck 0.2.0)`: Transmission's release first because Sonarr, Radarr
    /// and others compare it, then who is really answering.
    public var version: String
    /// RPC version 17 is Transmission 4.0's.
    public var rpcVersion = 17
    /// The oldest RPC version whose clients still work: 14, as in Transmission 4.0.
    public var rpcVersionMinimum = 14
    public var rpcVersionSemver = "5.3.0"

    public init(potluckVersion: String) {
        version = "\(Self.transmissionVersion) (Potluck \(potluckVersion))"
    }

    /// The `units` object: speeds and sizes in powers of 1000, memory in powers of 1024.
    static let units: JSONValue = .object([
        "speed-units": .array(["kB/s", "MB/s", "GB/s", "TB/s"].map(JSONValue.string)),
        "speed-bytes": .integer(1000),
        "size-units": .array(["kB", "MB", "GB", "TB"].map(JSONValue.string)),
        "size-bytes": .integer(1000),
        "memory-units": .array(["KiB", "MiB", "GiB", "TiB"].map(JSONValue.string)),
        "memory-bytes": .integer(1024),
    ])
}
