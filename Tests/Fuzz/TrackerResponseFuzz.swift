// libFuzzer harness for the HTTP tracker path. Built by run.sh, not by SwiftPM.
import Tracker

/// Treats the input as a tracker's HTTP response and as a bencoded body. The HTTP parser must reach the
/// same outcome whether the bytes arrive whole or in pieces; whatever the announce and scrape parsers
/// accept must respect the limits they promise. Nothing may trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func trackerResponseFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let limits = TrackerLimits(maxPeerCount: 200)
    checkAnnounce(bytes, limits: limits)
    _ = try? Scrape.parseResponse(bytes, limits: limits)

    let parserLimits = HTTPResponseParser.Limits(maxHeaderBytes: 2048, maxHeaderCount: 20, maxBodyBytes: 4096)
    let whole = parse(bytes, chunkSize: bytes.count, limits: parserLimits)
    let chunkSize = 1 + Int(bytes.first ?? 0) % 17
    precondition(
        parse(bytes, chunkSize: chunkSize, limits: parserLimits) == whole, "chunking changed the outcome")
    if case .success(let response) = whole {
        precondition(response.body.count <= parserLimits.maxBodyBytes, "body over its limit")
        precondition(response.headers.count <= parserLimits.maxHeaderCount, "too many headers kept")
        checkAnnounce(response.body, limits: limits)
    }

    // The same bytes as the answer to a session, which may redirect: the next URL must be usable.
    guard let start = try? TrackerURL("http://tracker.example:8080/dir/announce?k=1") else { return 0 }
    var session = HTTPTrackerSession(url: start, userAgent: "fuzz", maxRedirects: 2)
    _ = session.start()
    var action = session.receive(bytes)
    if action == nil { action = session.connectionClosed() }
    if case .connect(let next, let request) = action {
        precondition(next.scheme != .udp, "redirected to UDP")
        precondition(
            !request.isEmpty && request.allSatisfy { $0 >= 0x20 || $0 == 0x0d || $0 == 0x0a }, "bad request")
    }
    if let text = String(validating: bytes, as: UTF8.self), let url = try? TrackerURL(text) {
        precondition((try? TrackerURL(url.description)) == url, "URL did not round-trip")
        _ = try? Scrape.url(announce: url)
    }
    return 0
}

private func checkAnnounce(_ body: [UInt8], limits: TrackerLimits) {
    guard let response = try? AnnounceResponse(parsing: body, limits: limits) else { return }
    precondition(limits.intervalSecondsRange.contains(response.intervalSeconds), "interval not clamped")
    if let minimum = response.minimumIntervalSeconds {
        precondition(limits.intervalSecondsRange.contains(minimum), "min interval not clamped")
    }
    precondition(response.peers.count + response.skippedPeers.count <= limits.maxPeerCount, "too many peers")
    precondition(response.peers.allSatisfy { $0.port != 0 }, "a peer with port 0 got through")
}

private func parse(
    _ bytes: [UInt8], chunkSize: Int, limits: HTTPResponseParser.Limits
) -> Result<HTTPResponse, TrackerError> {
    var parser = HTTPResponseParser(limits: limits)
    let step = max(1, chunkSize)
    var offset = 0
    do {
        while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            if case .complete(let response) = try parser.feed(bytes[offset..<end]) {
                return .success(response)
            }
            offset = end
        }
        return .success(try parser.finish())
    } catch {
        return .failure(error)
    }
}
