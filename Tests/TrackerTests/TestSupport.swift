import Bencode
import Testing
import TorrentModel

@testable import Tracker

/// Bytes from hex, ignoring spaces, so vectors can be laid out like BEP tables.
func bytes(_ hex: String) -> [UInt8] {
    guard let decoded = Hex.decode(hex.filter { !$0.isWhitespace }) else {
        Issue.record("bad hex in test: \(hex)")
        return []
    }
    return decoded
}

/// ASCII bytes of a test string.
func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// An identifier of any kind (infohash, peer id) from hex.
func id20<Kind>(_ hex: String) -> Bytes20<Kind> {
    guard let id = Bytes20<Kind>(bytes(hex)) else {
        Issue.record("not 20 bytes: \(hex)")
        return Bytes20(Array(repeating: 0, count: 20))!
    }
    return id
}

/// An infohash of twenty copies of one character, like BEP 48's example hashes.
func repeated20(_ character: Character) -> InfoHash {
    InfoHash(Array(String(repeating: character, count: 20).utf8))!
}

/// The first tracker error thrown by `body`, or nil if it succeeded.
func trackerError<T>(_ body: () throws -> T) -> TrackerError? {
    do {
        _ = try body()
        return nil
    } catch let error as TrackerError {
        return error
    } catch {
        Issue.record("not a TrackerError: \(error)")
        return nil
    }
}

func url(_ text: String) -> TrackerURL {
    do {
        return try TrackerURL(text)
    } catch {
        Issue.record("test URL did not parse: \(error)")
        return TrackerURL(scheme: .http, host: .name("invalid"), port: 80, path: "/", query: nil)
    }
}
