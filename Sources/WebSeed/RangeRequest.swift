import Tracker

/// Writes the HTTP/1.1 request for one byte range of a file on a web seed.
public enum RangeRequest {
    /// `GET` with `Range: bytes=first-last` (inclusive, RFC 9110 section 14.1.2), `Host`, keep-alive
    /// (several ranges travel on one connection) and `Accept-Encoding: identity` (bytes must arrive as
    /// stored, to land at their offsets). Characters that could break the header are removed from
    /// `userAgent`; the URL parser already refused them in the target.
    public static func get(_ url: TrackerURL, range: Range<Int64>, userAgent: String) -> [UInt8] {
        precondition(!range.isEmpty && range.lowerBound >= 0, "a range request asks for at least one byte")
        let agent = String(decoding: userAgent.utf8.filter { $0 >= 0x20 && $0 < 0x7f }, as: UTF8.self)
        let text =
            "GET \(url.requestTarget) HTTP/1.1\r\n" + "Host: \(url.hostHeader)\r\n"
            + "User-Agent: \(agent)\r\n"
            + "Range: bytes=\(range.lowerBound)-\(range.upperBound - 1)\r\n" + "Accept-Encoding: identity\r\n"
            + "Connection: keep-alive\r\n" + "\r\n"
        return Array(text.utf8)
    }
}
