import Foundation
import Testing
import TransmissionRPC

/// `JSONValue.serialized` writes what Foundation's `JSONEncoder` wrote before it, byte for byte.
@Suite struct JSONWriterTests {
    static func foundation(_ value: JSONValue) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func written(_ value: JSONValue) -> String {
        String(decoding: value.serialized, as: UTF8.self)
    }

    @Test(arguments: [
        0, 1, -1, 2, 0.5, -0.25, 1.0 / 3, 2.0 / 3, 1e-7, 1e15, 1e16, 1.5e17, 1e21, 123_456_789.125,
        Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude, -0.0,
    ])
    func realsAsFoundationWritesThem(_ real: Double) throws {
        #expect(Self.written(.real(real)) == (try Self.foundation(.real(real))))
    }

    @Test func integersAndLiterals() throws {
        for value: JSONValue in [
            .integer(0), .integer(-42), .integer(Int.max), .integer(Int.min), .bool(true), .bool(false),
            .null,
        ] {
            #expect(Self.written(value) == (try Self.foundation(value)))
        }
    }

    @Test func stringsEscapedAsFoundationEscapesThem() throws {
        let everyASCII = String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self)
        for text in [everyASCII, "/a/b", "héllo wörld", "日本語", "emoji 🎉", "\u{2028}\u{2029}", ""] {
            #expect(Self.written(.string(text)) == (try Self.foundation(.string(text))))
        }
    }

    @Test func nestedValuesWithKeysInOrder() throws {
        let torrent: JSONValue = .object([
            "id": .integer(7), "name": .string("a \"b\""), "percentDone": .real(0.5), "status": .integer(6),
            "labels": .array([.string("x"), .string("y")]), "peer-limit": .integer(50),
            "files": .array([.object(["bytesCompleted": .integer(1), "length": .integer(2)])]),
        ])
        let value: JSONValue = .object(["arguments": .object(["torrents": .array([torrent, torrent])])])
        #expect(Self.written(value) == (try Self.foundation(value)))
    }

    @Test func keysSortedByTheirBytes() {
        let value: JSONValue = .object(["downloadedEver": .integer(1), "downloadLimit": .integer(2)])
        #expect(Self.written(value) == #"{"downloadLimit":2,"downloadedEver":1}"#)
    }
}
