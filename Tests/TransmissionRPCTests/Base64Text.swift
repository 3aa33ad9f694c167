import Foundation

/// Base64 text for building request bodies the way clients do.
enum Base64Text {
    static func of(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}
