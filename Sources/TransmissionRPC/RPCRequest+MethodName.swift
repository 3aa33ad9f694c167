extension RPCRequest {
    /// The method the call named: a fixed set, so monitoring can label by it without letting clients
    /// invent labels.
    public var methodName: String {
        switch self {
        case .sessionGet: "session-get"
        case .sessionSet: "session-set"
        case .sessionStats: "session-stats"
        case .sessionClose: "session-close"
        case .portTest: "port-test"
        case .freeSpace: "free-space"
        case .blocklistUpdate: "blocklist-update"
        case .torrentAdd: "torrent-add"
        case .torrentGet: "torrent-get"
        case .torrentSet: "torrent-set"
        case .torrentAction(let action, _): action.rawValue
        case .torrentRemove: "torrent-remove"
        case .torrentSetLocation: "torrent-set-location"
        case .torrentRenamePath: "torrent-rename-path"
        }
    }
}
