import Bencode
import Glibc
import URing

/// A move of a torrent's files that has begun and not yet finished, kept on disk so that a crash in the
/// middle of it loses nothing: at its next start the torrent finishes the move (`FileMove` skips what
/// was moved) before it looks at its data.
///
/// Written before the first file moves and removed after the last, or after a failed move whose files
/// all went back (one that left them split keeps it); bencoded `source` and `target`. Trusted only when
/// one of its folders is the torrent's.
public struct MoveJournal: Equatable, Sendable {
    /// The folder the files leave, and the one they go to.
    public let source: String
    public let target: String

    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }

    /// The journal of the torrent whose resume data lives at `resumePath`.
    public static func path(forResumeData resumePath: String) -> String { resumePath + ".move" }

    /// The journal at `path`, or nil when there is none. One that cannot be read is an error: ignoring
    /// it would start the torrent with its files split between two folders.
    public static func load(from path: String) throws(StorageError) -> MoveJournal? {
        let bytes: [UInt8]?
        do {
            bytes = try SmallFile.read(path, maximumBytes: 64 << 10)
        } catch {
            if error.errno == .noSuchFile { return nil }
            throw error
        }
        guard let bytes, let value = try? BencodeValue(decoding: bytes),
            let source = value["source"]?.string, let target = value["target"]?.string,
            !source.isEmpty, !target.isEmpty
        else {
            throw StorageError(.decode, path: path, reason: .damaged("it is not a move journal"))
        }
        return MoveJournal(source: source, target: target)
    }

    public func save(to path: String) throws(StorageError) {
        let value: BencodeValue = ["source": .string(source), "target": .string(target)]
        try SmallFile.writeAtomically(value.encoded(), to: path)
    }

    public static func remove(at path: String) {
        unlink(path)
    }
}
