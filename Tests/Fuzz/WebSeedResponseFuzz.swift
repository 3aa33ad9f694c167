// libFuzzer harness for the web seed range client (BEP 19). Built by run.sh, not by SwiftPM.
import Tracker
import WebSeed

/// Three bytes choose the range asked for (start, length, how much longer the file is); the rest is the
/// server's answer. The parser must reach the same outcome, hand out the same body bytes and consume the
/// same count (when it ends well) whether the answer arrives whole or in pieces; the body must be the range asked for, in
/// order, never more; a redirect must lead to plain http. Nothing may trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func webSeedResponseFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, count: size)
    let start = Int64(input.byte() % 64)
    let length = Int64(1 + input.byte() % 64)
    let fileLength = start + length + Int64(input.byte() % 4)
    var answer: [UInt8] = []
    while !input.isAtEnd { answer.append(input.byte()) }
    let range = start..<start + length
    let whole = parse(answer, range: range, fileLength: fileLength, chunkSize: answer.count)
    let chunkSize = 1 + Int(answer.first ?? 0) % 13
    let chunked = parse(answer, range: range, fileLength: fileLength, chunkSize: chunkSize)
    precondition(whole.outcome == chunked.outcome, "chunking changed the outcome")
    precondition(whole.body == chunked.body, "chunking changed the body")
    if case .success = whole.outcome {
        precondition(whole.consumed == chunked.consumed, "chunking changed where the answer ends")
    }
    precondition(whole.body.count <= Int(length), "more body than asked for")
    precondition(whole.consumed <= answer.count, "consumed more than was given")
    if case .success(.complete) = whole.outcome {
        precondition(whole.body.count == Int(length), "complete without the whole range")
    }
    if case .success(.redirect(let location)) = whole.outcome,
        let url = try? TrackerURL("http://seed.example:8080/pub/file.bin"),
        let next = try? WebSeedURL.redirect(from: url, to: location, redirectsSoFar: 0)
    {
        precondition(next.scheme == .http, "redirected away from http")
    }
    return 0
}

private func parse(
    _ bytes: [UInt8], range: Range<Int64>, fileLength: Int64, chunkSize: Int
) -> (outcome: Result<RangeResponseParser.Outcome, WebSeedError>, body: [UInt8], consumed: Int) {
    var parser = RangeResponseParser(
        range: range, fileLength: fileLength, limits: .init(maxHeaderBytes: 2048, maxHeaderCount: 20))
    var body: [UInt8] = []
    var consumed = 0
    var offset = 0
    let step = max(1, chunkSize)
    repeat {
        let chunk = Array(bytes[offset..<min(bytes.count, offset + step)])
        do {
            let (taken, outcome) = try chunk.withUnsafeBytes { pointer in
                try parser.feed(pointer) { fileOffset, part in
                    precondition(fileOffset == range.lowerBound + Int64(body.count), "body out of order")
                    body += part
                }
            }
            consumed += taken
            if outcome != .needMoreBytes { return (.success(outcome), body, consumed) }
        } catch let error as WebSeedError {
            return (.failure(error), body, consumed)
        } catch {
            preconditionFailure("the parser throws only WebSeedError")
        }
        offset += step
    } while offset < bytes.count
    if let error = parser.connectionClosed() { return (.failure(error), body, consumed) }
    return (.success(.needMoreBytes), body, consumed)
}
