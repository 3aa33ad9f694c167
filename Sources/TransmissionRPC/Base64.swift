import Foundation

/// Base64 as the RPC carries binary: `metainfo` in, `pieces` out.
enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// Decodes standard base64, skipping line breaks and other characters outside the alphabet as
    /// Transmission's decoder does (some clients wrap their base64 at 76 columns); nil when malformed.
    static func decode(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text, options: .ignoreUnknownCharacters).map(Array.init)
    }
}
