import Hashing

extension MagnetLink {
    /// A .torrent file for the torrent this link names, once its info dictionary is known: the
    /// dictionary exactly as received (re-encoding could change its hash), the link's trackers (`tr`,
    /// each a tier of its own, the first also as `announce`) and web seeds (`ws`, as `url-list`), and
    /// for a v2 torrent the piece layers fetched from peers (BEP 52), by file root.
    public func torrentFile(
        infoDictionary: [UInt8], pieceLayers: [SHA256Digest: [SHA256Digest]] = [:]
    ) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "d")]
        func string(_ text: String) {
            bytes += Array("\(text.utf8.count):".utf8) + Array(text.utf8)
        }
        // Keys in sorted order, as bencoding requires.
        if let first = trackers.first {
            string("announce")
            string(first)
            string("announce-list")
            bytes.append(UInt8(ascii: "l"))
            for tracker in trackers {
                bytes.append(UInt8(ascii: "l"))
                string(tracker)
                bytes.append(UInt8(ascii: "e"))
            }
            bytes.append(UInt8(ascii: "e"))
        }
        string("info")
        bytes += infoDictionary
        if !pieceLayers.isEmpty {
            string("piece layers")
            bytes.append(UInt8(ascii: "d"))
            // Keys are the roots' raw bytes, sorted as bencoding requires.
            for (root, layer) in pieceLayers.sorted(by: {
                $0.key.bytes.lexicographicallyPrecedes($1.key.bytes)
            }) {
                bytes += Array("32:".utf8) + root.bytes
                bytes += Array("\(layer.count * SHA256Digest.byteCount):".utf8)
                for hash in layer { bytes += hash.bytes }
            }
            bytes.append(UInt8(ascii: "e"))
        }
        if !webSeeds.isEmpty {
            string("url-list")
            bytes.append(UInt8(ascii: "l"))
            for seed in webSeeds { string(seed) }
            bytes.append(UInt8(ascii: "e"))
        }
        bytes.append(UInt8(ascii: "e"))
        return bytes
    }
}
