/// Carries out decoded calls on a backend and builds each reply's `arguments`.
public struct RPCDispatcher: Sendable {
    public let backend: any TransmissionBackend
    public var identity: ServerIdentity
    /// Reported by session-get as `session-id`: the same token as the CSRF header.
    public var sessionID: String

    public init(backend: any TransmissionBackend, identity: ServerIdentity, sessionID: String) {
        self.backend = backend
        self.identity = identity
        self.sessionID = sessionID
    }

    /// The reply's `arguments`, or the failure whose message becomes its `result`.
    public func reply(to request: RPCRequest) async throws(RPCFailure) -> [String: JSONValue] {
        switch try await arguments(for: request, written: false) {
        case .object(let arguments): arguments
        case .torrents(let list): list.value
        }
    }

    /// The reply's `arguments` as the endpoint writes them: torrent-get's straight from the snapshots,
    /// or from the rows the backend kept when the reply is `written` (not made a `JSONValue`).
    func arguments(for request: RPCRequest, written: Bool) async throws(RPCFailure) -> ReplyArguments {
        do {
            if case .torrentGet(let fields, let selection, let format) = request {
                return .torrents(await torrentList(fields, of: selection, format: format, written: written))
            }
            return .object(try await perform(request))
        } catch let failure as RPCFailure {
            throw failure
        } catch {
            throw RPCFailure(String(describing: error))
        }
    }

    /// A reply's `arguments`: an object, or torrent-get's list, written without making it an object.
    enum ReplyArguments: Sendable {
        case object([String: JSONValue])
        case torrents(TorrentList)

        func write(into writer: inout JSONWriter) {
            switch self {
            case .object(let arguments): writer.write(.object(arguments))
            case .torrents(let list): list.write(into: &writer)
            }
        }
    }

    private func perform(_ request: RPCRequest) async throws -> [String: JSONValue] {
        switch request {
        case .sessionGet(let fields):
            return await sessionFields(fields)
        case .sessionSet(let changes):
            try await backend.updateSession(changes)
        case .sessionStats:
            return await backend.sessionStatistics().arguments
        case .sessionClose:
            await backend.closeSession()
        case .portTest:
            return ["port-is-open": .bool(try await backend.testPort())]
        case .freeSpace(let path):
            let space = try await backend.freeSpace(at: path)
            return [
                "path": .string(path), "size-bytes": .integer(space.freeBytes),
                "total_size": .integer(space.totalBytes),
            ]
        case .blocklistUpdate:
            throw RPCFailure("blocklist-update is not supported: Potluck has no blocklist")
        case .torrentAdd(let add):
            switch try await backend.addTorrent(add) {
            case .added(let torrent): return ["torrent-added": Self.identityObject(torrent)]
            case .duplicate(let torrent): return ["torrent-duplicate": Self.identityObject(torrent)]
            }
        case .torrentGet(let fields, let selection, let format):
            return await torrentList(fields, of: selection, format: format, written: false).value
        case .torrentSet(let selection, let changes):
            try await backend.change(selection, changes)
        case .torrentAction(let action, let selection):
            try await backend.perform(action, on: selection)
        case .torrentRemove(let selection, let deleteLocalData):
            try await backend.remove(selection, deletingLocalData: deleteLocalData)
        case .torrentSetLocation(let selection, let location, let move):
            try await backend.setLocation(of: selection, to: location, move: move)
        case .torrentRenamePath(let selection, let path, let name):
            let named = await backend.torrents(selection, fields: [.id]).torrents
            guard named.count == 1 else { throw RPCFailure("torrent-rename-path requires 1 torrent") }
            try await backend.renamePath(inTorrent: named[0].id, from: path, to: name)
            return ["id": .integer(named[0].id), "path": .string(path), "name": .string(name)]
        }
        return [:]
    }

    /// session-get: the requested keys that exist (all when `fields` is nil), unknown ones left out.
    private func sessionFields(_ fields: [String]?) async -> [String: JSONValue] {
        let settings = await backend.sessionSettings()
        var all: [String: JSONValue] = [
            "version": .string(identity.version),
            "rpc-version": .integer(identity.rpcVersion),
            "rpc-version-minimum": .integer(identity.rpcVersionMinimum),
            "rpc-version-semver": .string(identity.rpcVersionSemver),
            "session-id": .string(sessionID),
            "units": ServerIdentity.units,
        ]
        for key in SessionSettingKey.allCases { all[key.rawValue] = key.value(in: settings) }
        // Deprecated in 4.0 but still read by older clients; costs a statfs, so only when asked for.
        let freeSpaceKey = "download-dir-free-space"
        if fields?.contains(freeSpaceKey) ?? true {
            let space = try? await backend.freeSpace(at: settings.downloadDirectory)
            all[freeSpaceKey] = .integer(space?.freeBytes ?? -1)
        }
        guard let fields else { return all }
        return all.filter { fields.contains($0.key) }
    }

    private func torrentList(
        _ fields: [TorrentField], of selection: TorrentSelection, format: TorrentGetFormat, written: Bool
    ) async -> TorrentList {
        let layout = TorrentRowLayout(fields: fields, format: format)
        let kept = written && layout.isList ? await backend.torrentRows(selection, layout: layout) : nil
        let listing: TorrentListing
        if let kept {
            listing = kept
        } else {
            listing = await backend.torrents(selection, fields: Set(fields))
        }
        return TorrentList(listing: listing, layout: layout, reportsRemoved: selection == .recentlyActive)
    }

    private static func identityObject(_ torrent: TorrentIdentity) -> JSONValue {
        .object([
            "id": .integer(torrent.id), "name": .string(torrent.name),
            "hashString": .string(torrent.hash.hex),
        ])
    }
}
