/// Who may reach the RPC and how: the settings Transmission keeps under `rpc-*` in settings.json.
public struct AccessPolicy: Sendable, Hashable {
    /// A user name and password for HTTP Basic authentication.
    public struct Credentials: Sendable, Hashable {
        public var username: String
        public var password: String

        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    /// Transmission's default: base64 metainfo of a torrent with very many pieces fits with room to spare.
    public static let defaultMaximumBodyBytes = 16 << 20

    /// Requests under this path are RPC calls (`rpc-url` plus `rpc`).
    public var rpcPath: String
    /// When set, every request needs these in an `Authorization: Basic` header.
    public var credentials: Credentials?
    /// When set, only clients whose address matches an entry are served (`rpc-whitelist`).
    public var addressWhitelist: [WildcardPattern]?
    /// When set, the `Host` header must name one of these, an IP literal or localhost
    /// (`rpc-host-whitelist`): a defence against DNS rebinding.
    public var hostWhitelist: [WildcardPattern]?
    /// Larger request bodies are refused with 413. The HTTP server should enforce it while reading too.
    public var maximumBodyBytes: Int

    /// Transmission's defaults: loopback clients only, any host name, no password.
    public init(
        rpcPath: String = "/transmission/rpc",
        credentials: Credentials? = nil,
        addressWhitelist: [WildcardPattern]? = WildcardPattern.list("127.0.0.1,::1"),
        hostWhitelist: [WildcardPattern]? = [],
        maximumBodyBytes: Int = defaultMaximumBodyBytes
    ) {
        self.rpcPath = rpcPath
        self.credentials = credentials
        self.addressWhitelist = addressWhitelist
        self.hostWhitelist = hostWhitelist
        self.maximumBodyBytes = maximumBodyBytes
    }
}
