/// torrent-get's `arguments`: the torrents in the layout asked for and, for `recently-active`, the
/// ids removed lately.
///
/// Written straight from the snapshots into the reply (`write(into:)`), or from the rows the backend
/// kept (`TorrentListing.rows`): building a `JSONValue` per field, a dictionary per torrent and
/// sorting its keys again for each took most of a torrent-get of 10,000 torrents. `value` is the same
/// reply as a `JSONValue`, for callers that want one (from snapshots only); the two write the same
/// bytes.
struct TorrentList: Sendable {
    var listing: TorrentListing
    var layout: TorrentRowLayout
    var reportsRemoved: Bool

    var value: [String: JSONValue] {
        let torrents: [JSONValue]
        let fields = layout.fields
        switch layout.format {
        case .objects:
            torrents = listing.torrents.map { torrent in
                .object(Dictionary(fields.map { ($0.rawValue, $0.value(of: torrent)) }) { first, _ in first })
            }
        case .table:
            let header = JSONValue.array(fields.map { .string($0.rawValue) })
            torrents =
                [header] + listing.torrents.map { torrent in .array(fields.map { $0.value(of: torrent) }) }
        }
        var arguments: [String: JSONValue] = ["torrents": .array(torrents)]
        if reportsRemoved {
            arguments["removed"] = .array(listing.removedIDs.map(JSONValue.integer))
        }
        return arguments
    }

    /// The `arguments` object, keys in order (`removed` before `torrents`), as `value` would be written.
    func write(into writer: inout JSONWriter) {
        writer.append(byte: UInt8(ascii: "{"))
        if reportsRemoved {
            writer.append(#""removed":["#)
            for (index, id) in listing.removedIDs.enumerated() {
                if index > 0 { writer.append(byte: UInt8(ascii: ",")) }
                writer.writeInteger(id)
            }
            writer.append("],")
        }
        writer.append(#""torrents":["#)
        // A table starts with a header row of the field names as asked (repeats kept).
        let header = layout.format == .table
        if header { writer.write(.array(layout.fields.map { .string($0.rawValue) })) }
        if let rows = listing.rows {
            // With room for what follows (the reply's `result` and `tag`): one byte over would
            // double the buffer.
            writer.reserveCapacity(writer.bytes.count + rows.reduce(rows.count) { $0 + $1.count } + 256)
            for (index, row) in rows.enumerated() {
                if index > 0 || header { writer.append(byte: UInt8(ascii: ",")) }
                writer.append(row)
            }
        } else {
            // Each torrent read where it lies (`baseAddress + index`): passed on by value
            // (`torrents[index]`, which copies), each cost a score of retains and releases, a tenth
            // of the whole call.
            listing.torrents.withUnsafeBufferPointer { torrents in
                let start = writer.bytes.count
                for index in torrents.indices {
                    if index > 0 || header { writer.append(byte: UInt8(ascii: ",")) }
                    layout.writeRow(of: torrents.baseAddress! + index, into: &writer)
                    if index == 0 { Self.reserve(for: torrents.count, after: start, in: &writer) }
                }
            }
        }
        writer.append("]}")
    }

    /// Room for all the torrents, reserved once the first (written since `start`) shows how long one is.
    /// At most 64 MiB ahead: one torrent of half a million files says nothing of the magnet links
    /// after it, and its estimate times thousands of torrents is more than the machine has.
    private static func reserve(for count: Int, after start: Int, in writer: inout JSONWriter) {
        let each = writer.bytes.count - start
        let most = 64 << 20
        let ahead = count - 1 > most / max(each, 1) ? most : min(most, each * (count - 1) * 9 / 8)
        writer.reserveCapacity(writer.bytes.count + ahead + 64)
    }
}

/// How torrent-get writes each torrent: an object of the fields asked for (each once, keys sorted as
/// the writer sorts an object's, by the same comparison), or a table row of them as asked (repeats
/// kept). Made once per call: each key and its colon are written once for all torrents.
public struct TorrentRowLayout: Sendable, Equatable {
    public let fields: [TorrentField]
    public let format: TorrentGetFormat
    /// For objects: the fields once each in key order, and each key with its colon (a comma before
    /// all but the first).
    private let keyed: [TorrentField]
    private let keys: [[UInt8]]

    public init(fields: [TorrentField], format: TorrentGetFormat) {
        self.fields = fields
        self.format = format
        var seen = Set<TorrentField>()
        keyed = fields.filter { seen.insert($0).inserted }.sorted { $0.rawValue < $1.rawValue }
        keys = keyed.enumerated().map { index, field in
            var key = JSONWriter()
            if index > 0 { key.append(byte: UInt8(ascii: ",")) }
            key.writeString(field.rawValue)
            key.append(byte: UInt8(ascii: ":"))
            return key.bytes
        }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.fields == rhs.fields && lhs.format == rhs.format
    }

    /// Every field is one of a list's (`TorrentField.listFields`): what a backend may keep each
    /// torrent's row of (`TransmissionBackend.torrentRows`).
    public var isList: Bool { fields.allSatisfy(TorrentField.listFields.contains) }

    /// The torrent's row, as torrent-get writes it: written with room to spare, then copied at its
    /// size, since a backend may keep it (grown byte by byte, a row of 260 bytes took seven
    /// allocations and kept 512).
    public func row(of torrent: TorrentSnapshot) -> [UInt8] {
        var writer = JSONWriter()
        writer.reserveCapacity(2048)
        withUnsafePointer(to: torrent) { writeRow(of: $0, into: &writer) }
        // Copied from the buffer: a slice of all of an array would hand back the same storage.
        return writer.bytes.withUnsafeBufferPointer { Array($0) }
    }

    func writeRow(of torrent: UnsafePointer<TorrentSnapshot>, into writer: inout JSONWriter) {
        switch format {
        case .objects:
            writer.append(byte: UInt8(ascii: "{"))
            for field in keyed.indices {
                writer.append(keys[field])
                keyed[field].write(of: torrent, into: &writer)
            }
            writer.append(byte: UInt8(ascii: "}"))
        case .table:
            writer.append(byte: UInt8(ascii: "["))
            for (position, field) in fields.enumerated() {
                if position > 0 { writer.append(byte: UInt8(ascii: ",")) }
                field.write(of: torrent, into: &writer)
            }
            writer.append(byte: UInt8(ascii: "]"))
        }
    }
}

extension TorrentField {
    /// What a listing of many torrents asks for (`transmission-remote -l`, the web client's list),
    /// written by `write(of:into:)` without making the value first. None of them is made of a costly
    /// part (files, peers, pieces, trackers) or ticks every second (`secondsSeeding`).
    public static let listFields: Set<TorrentField> = [
        .activityDate, .addedDate, .doneDate, .downloadDir, .error, .errorString, .eta, .etaIdle,
        .hashString, .haveUnchecked, .haveValid, .id, .isFinished, .isStalled, .leftUntilDone,
        .metadataPercentComplete, .name, .peersConnected, .peersGettingFromUs, .peersSendingToUs,
        .percentDone, .queuePosition, .rateDownload, .rateUpload, .recheckProgress, .sizeWhenDone,
        .status, .totalSize, .uploadedEver, .uploadRatio,
    ]

    /// Writes `value(of:)` of the torrent at `pointer`, the `listFields` without making the value
    /// first; the rest go through `value(of:)`.
    func write(of pointer: UnsafePointer<TorrentSnapshot>, into writer: inout JSONWriter) {
        switch self {
        case .activityDate: writer.writeInteger(pointer.pointee.activityDate)
        case .addedDate: writer.writeInteger(pointer.pointee.addedDate)
        case .doneDate: writer.writeInteger(pointer.pointee.doneDate)
        case .downloadDir: writer.writeString(pointer.pointee.downloadDir)
        case .error: writer.writeInteger(pointer.pointee.error.rawValue)
        case .errorString: writer.writeString(pointer.pointee.errorString)
        case .eta: writer.writeInteger(pointer.pointee.eta)
        case .etaIdle: writer.writeInteger(pointer.pointee.etaIdle)
        case .hashString: writer.writeString(pointer.pointee.hash.hex)
        case .haveUnchecked: writer.writeInteger(pointer.pointee.haveUnchecked)
        case .haveValid: writer.writeInteger(pointer.pointee.haveValid)
        case .id: writer.writeInteger(pointer.pointee.id)
        case .isFinished: writer.writeBool(pointer.pointee.isFinished)
        case .isStalled: writer.writeBool(pointer.pointee.isStalled)
        case .leftUntilDone: writer.writeInteger(pointer.pointee.leftUntilDone)
        case .metadataPercentComplete: writer.writeFiniteOrNull(pointer.pointee.metadataPercentComplete)
        case .name: writer.writeString(pointer.pointee.name)
        case .peersConnected: writer.writeInteger(pointer.pointee.peersConnected)
        case .peersGettingFromUs: writer.writeInteger(pointer.pointee.peersGettingFromUs)
        case .peersSendingToUs: writer.writeInteger(pointer.pointee.peersSendingToUs)
        case .percentDone: writer.writeFiniteOrNull(pointer.pointee.percentDone)
        case .queuePosition: writer.writeInteger(pointer.pointee.queuePosition)
        case .rateDownload: writer.writeInteger(pointer.pointee.rateDownload)
        case .rateUpload: writer.writeInteger(pointer.pointee.rateUpload)
        case .recheckProgress: writer.writeFiniteOrNull(pointer.pointee.recheckProgress)
        case .sizeWhenDone: writer.writeInteger(pointer.pointee.sizeWhenDone)
        case .status: writer.writeInteger(pointer.pointee.status.rawValue)
        case .totalSize: writer.writeInteger(pointer.pointee.totalSize)
        case .uploadedEver: writer.writeInteger(pointer.pointee.uploadedEver)
        case .uploadRatio: writer.writeFiniteOrNull(pointer.pointee.uploadRatio)
        default: writer.write(value(of: pointer.pointee))
        }
    }
}
