import Foundation
import Testing
import TransmissionRPC

/// `JSONValue(parsing:)` reads what `JSONDecoder` read before it (the Codable conformance, kept for the
/// state folder's files), value for value, and refuses what it refused.
@Suite struct JSONParsingTests {
    static func decoded(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test(arguments: [
        "0", "1", "-1", "1.0", "1e2", "1E0", "-0", "1.5", "0.1", "-2.5e-3", "9223372036854775807",
        "-9223372036854775808", "9223372036854775808", "18446744073709551615", "92233720368547758070",
        "true", "false", "null", #""s""#, #""\u00e9\ud83d\ude00\n""#, "[]", "{}",
        #"{"a":[1,2.5,{"b":null}],"c":"d","e":true}"#, #"[{"x":1},{"x":-1.25}]"#,
    ])
    func valuesAreReadAsTheDecoderReadThem(_ text: String) {
        #expect(JSONValue(parsing: Array(text.utf8)) == Self.decoded(text))
    }

    @Test func malformedTextIsRefused() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        for text in ["", "[", "{\"a\"}", "[1,,2]", "tru", "\"\u{7f}", deep] {
            #expect(JSONValue(parsing: Array(text.utf8)) == nil, "\(text.prefix(20))")
        }
        #expect(JSONValue(parsing: [0x22, 0xff, 0x22]) == nil, "invalid UTF-8")
    }
}
