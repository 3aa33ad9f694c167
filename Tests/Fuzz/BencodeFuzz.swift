// libFuzzer harness for the bencode decoder. Built by run.sh, not by SwiftPM.
import Bencode

/// Decodes arbitrary bytes; anything accepted must re-encode to exactly the same bytes, because the
/// decoder only accepts canonical input and infohashes depend on that.
@_cdecl("LLVMFuzzerTestOneInput")
public func bencodeFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let document = try? BencodeDocument(bytes: bytes, limits: BencodeLimits(maxInputBytes: 1 << 20))
    else {
        return 0
    }
    let reencoded = BencodeValue(document.root).encoded()
    precondition(reencoded == bytes, "an accepted document did not round-trip")
    walk(document.root)
    return 0
}

/// Touches every accessor of every node so that range bugs surface under AddressSanitizer.
private func walk(_ root: BencodeNode) {
    var pending = [root]
    while let node = pending.popLast() {
        _ = node.encodedBytes.count
        _ = node.integer
        _ = node.byteString?.count
        _ = node.string
        if let list = node.list { pending.append(contentsOf: list) }
        if let dictionary = node.dictionary {
            for entry in dictionary {
                _ = entry.key.count
                _ = node[entry.key]
                pending.append(entry.value)
            }
        }
    }
}
