// libFuzzer harness for the BEP 10 extension handshake. Built by run.sh, not by SwiftPM.
import Bencode
import PeerWire

/// Decodes arbitrary bytes as a peer's extension handshake (the payload of extended message 0). What is
/// accepted must respect the bounds the type promises (client name, `reqq`, port, address, metadata
/// size); its encoding must be canonical bencode; and decoding that encoding must give the same
/// handshake, so what we keep from a peer is stable.
@_cdecl("LLVMFuzzerTestOneInput")
public func extensionHandshakeFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let handshake: ExtensionHandshake
    do {
        handshake = try ExtensionHandshake(decoding: bytes)
    } catch {
        if case .notADictionary = error {
            precondition((try? BencodeValue(decoding: bytes))?.dictionary == nil, "a dictionary refused")
        }
        return 0
    }
    if let name = handshake.clientName {
        precondition(name.utf8.count <= ExtensionHandshake.maximumClientNameBytes, "client name too long")
    }
    if let length = handshake.requestQueueLength {
        precondition((1...ExtensionHandshake.maximumRequestQueueLength).contains(length), "reqq out of range")
    }
    precondition(handshake.listenPort != 0, "port 0 kept")
    if let address = handshake.yourAddress {
        precondition(address.count == 4 || address.count == 16, "yourip is not an address")
    }
    if let size = handshake.metadataSize {
        precondition(size > 0 && size <= MetadataMessage.maximumMetadataSize, "metadata size out of range")
    }

    let encoded = handshake.encoded()
    guard let document = try? BencodeDocument(bytes: encoded) else {
        preconditionFailure("the encoding is not canonical bencode")
    }
    precondition(BencodeValue(document.root).encoded() == encoded, "the encoding is not canonical bencode")
    guard let again = try? ExtensionHandshake(decoding: encoded) else {
        preconditionFailure("our own encoding is refused")
    }
    precondition(again == handshake, "decoding our encoding changed the handshake")
    precondition(again.encoded() == encoded, "encoding is not stable")
    return 0
}
