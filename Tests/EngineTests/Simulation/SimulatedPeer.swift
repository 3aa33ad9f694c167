import TorrentModel
import URing

/// A BitTorrent seeder written from BEP 3 alone, for the engine simulation: it answers the handshake
/// with its own and a full bitfield, unchokes whoever is interested, and serves every valid request in
/// order over its link. A liar flips a byte of every block it sends; a staller unchokes and then never
/// sends a block; a garbler answers a request with a block of a piece the torrent does not have; a
/// churner, once unchoked, asks for one block and cancels it over and over; a trickler sends each
/// block a kilobyte at a time; a peer may go away for a
/// while (its connections close; it refuses or ignores new ones) and come back.
final class SimulatedPeer {
    let name: String
    let address: SocketAddress
    let link: SimulatedLink
    let lies: Bool
    let stalls: Bool
    let garbles: Bool
    /// While away: refuse connections (true) or leave them unanswered until the engine gives up.
    let refusesWhenAway: Bool
    weak var world: SimulatedWorld?
    private let torrent: SimulatedTorrent
    private var awayUntil: UInt64 = 0
    private var states: [ObjectIdentifier: ConnectionState] = [:]
    private(set) var servedBlocks = 0
    /// A leecher asks for every block, a few at a time, and checks each against the torrent.
    let leeches: Bool
    /// Once unchoked, asks for the first block and cancels it this many times, then asks once more.
    let churns: Int
    /// Sends each block in 1 KiB sends, which the link spaces out: its bytes arrive a little at a time.
    let trickles: Bool
    /// What a leecher has received intact, by block (piece × blocks per piece + block).
    private(set) var receivedBlocks: Set<Int> = []
    private(set) var corruptBlocks = 0
    var hasEverything: Bool { receivedBlocks.count == torrent.blockCount }

    private final class ConnectionState {
        let connection: SimulatedConnection
        var buffer: [UInt8] = []
        var handshakeSeen = false
        var unchoked = false
        /// A leecher's requests on this connection, in the order sent.
        var requested: [Int] = []
        var unchokedUs = false
        init(_ connection: SimulatedConnection) { self.connection = connection }
    }

    init(
        name: String, address: SocketAddress, link: SimulatedLink, torrent: SimulatedTorrent,
        lies: Bool = false,
        stalls: Bool = false, garbles: Bool = false, leeches: Bool = false, churns: Int = 0,
        trickles: Bool = false, refusesWhenAway: Bool = true
    ) {
        self.name = name
        self.address = address
        self.link = link
        self.torrent = torrent
        self.lies = lies
        self.stalls = stalls
        self.garbles = garbles
        self.leeches = leeches
        self.churns = churns
        self.trickles = trickles
        self.refusesWhenAway = refusesWhenAway
    }

    /// Goes away at `time` for `seconds`: every connection closes.
    func leave(at time: UInt64, forSeconds seconds: UInt64) {
        world?.schedule(at: time) { [self] in
            awayUntil = time + seconds * 1_000_000_000
            world?.note("\(name) leaves")
            for state in states.values { world?.peerCloses(state.connection) }
        }
    }

    func accepts(_ connection: SimulatedConnection, at now: UInt64) -> Bool { now >= awayUntil }

    func connected(_ connection: SimulatedConnection) {
        states[ObjectIdentifier(connection)] = ConnectionState(connection)
    }

    func closed(_ connection: SimulatedConnection) {
        states[ObjectIdentifier(connection)] = nil
    }

    func received(_ bytes: [UInt8], on connection: SimulatedConnection) {
        guard let state = states[ObjectIdentifier(connection)] else { return }
        state.buffer.append(contentsOf: bytes)
        if !state.handshakeSeen {
            guard state.buffer.count >= 68 else { return }
            guard state.buffer[0] == 19, Array(state.buffer[1..<20]) == Array("BitTorrent protocol".utf8),
                Array(state.buffer[28..<48]) == torrent.infoHash
            else { return hangUp(state) }
            state.handshakeSeen = true
            state.buffer.removeFirst(68)
            var answer: [UInt8] = [19] + Array("BitTorrent protocol".utf8) + Array(repeating: 0, count: 8)
            answer += torrent.infoHash
            answer += Array("-SIM001-".utf8) + Array(name.utf8.prefix(12))
            answer += Array(repeating: UInt8(ascii: "."), count: 68 - answer.count)
            answer += leeches ? Self.message(2, []) : Self.message(5, torrent.fullBitfield)
            world?.peerSends(answer, on: connection)
        }
        while state.buffer.count >= 4 {
            let length = Int(Self.uint32(state.buffer, at: 0))
            guard length <= 1 << 17 else { return hangUp(state) }
            guard state.buffer.count >= 4 + length else { return }
            let message = Array(state.buffer[4..<4 + length])
            state.buffer.removeFirst(4 + length)
            if !message.isEmpty { handle(message, state) }
        }
    }

    private func handle(_ message: [UInt8], _ state: ConnectionState) {
        switch message[0] {
        case 2 where !state.unchoked:  // interested
            state.unchoked = true
            world?.peerSends(Self.message(1, []), on: state.connection)
        case 6 where message.count == 13 && state.unchoked && !stalls:  // request
            let index = Int(Self.uint32(message, at: 1))
            let begin = Int(Self.uint32(message, at: 5))
            let length = Int(Self.uint32(message, at: 9))
            guard let block = torrent.block(piece: index, begin: begin, length: length) else {
                return hangUp(state)
            }
            var data = block
            if lies { data[data.count / 2] ^= 0xff }
            // A trickling liar spoils every byte: whatever part of it arrives is garbage.
            if lies && trickles { data = data.map { $0 ^ 0x5a } }
            servedBlocks += 1
            let named = garbles ? torrent.pieceCount + index : index
            let message = Self.message(
                7, Self.bigEndian(UInt32(named)) + Self.bigEndian(UInt32(begin)) + data)
            let chunk = trickles ? 1024 : message.count
            for start in stride(from: 0, to: message.count, by: chunk) {
                world?.peerSends(
                    Array(message[start..<min(start + chunk, message.count)]), on: state.connection)
            }
        case 1 where leeches && churns > 0:  // unchoke
            let (piece, begin, length) = torrent.location(ofBlock: 0)
            let block = [piece, begin, length].flatMap { Self.bigEndian(UInt32($0)) }
            let pair = Self.message(6, block) + Self.message(8, block)
            world?.peerSends(
                Array([[UInt8]](repeating: pair, count: churns).joined()) + Self.message(6, block),
                on: state.connection)
        case 1 where leeches:  // unchoke
            state.unchokedUs = true
            requestMore(state)
        case 0 where leeches:  // choke: what was asked will not come
            state.unchokedUs = false
            state.requested.removeAll()
        case 7 where leeches && message.count > 9:  // piece
            let piece = Int(Self.uint32(message, at: 1))
            let begin = Int(Self.uint32(message, at: 5))
            let block = piece * torrent.blocksPerPiece + begin / 16_384
            guard let position = state.requested.firstIndex(of: block) else { return hangUp(state) }
            state.requested.remove(at: position)
            if torrent.block(piece: piece, begin: begin, length: message.count - 9) == Array(message[9...]) {
                receivedBlocks.insert(block)
            } else {
                corruptBlocks += 1
            }
            if hasEverything {
                for other in states.values { world?.peerSends(Self.message(3, []), on: other.connection) }
            }
            requestMore(state)
        default:
            break
        }
    }

    /// Keeps four requests out for blocks no connection has asked for yet, from a place of its own
    /// (derived from its name, so that runs replay).
    private func requestMore(_ state: ConnectionState) {
        guard state.unchokedUs else { return }
        let asked = Set(states.values.flatMap(\.requested))
        var block = name.utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xffff } % torrent.blockCount
        var scanned = 0
        while state.requested.count < 4 && scanned < torrent.blockCount {
            if !receivedBlocks.contains(block) && !asked.contains(block) && !state.requested.contains(block) {
                state.requested.append(block)
                let (piece, begin, length) = torrent.location(ofBlock: block)
                world?.peerSends(
                    Self.message(
                        6,
                        Self.bigEndian(UInt32(piece)) + Self.bigEndian(UInt32(begin))
                            + Self.bigEndian(UInt32(length))),
                    on: state.connection)
            }
            block = (block + 1) % torrent.blockCount
            scanned += 1
        }
    }

    private func hangUp(_ state: ConnectionState) {
        world?.peerCloses(state.connection)
    }

    static func message(_ id: UInt8, _ payload: [UInt8]) -> [UInt8] {
        bigEndian(UInt32(1 + payload.count)) + [id] + payload
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// A torrent's bytes and what a seeder needs to serve them.
struct SimulatedTorrent {
    let payload: [UInt8]
    let pieceLength: Int
    let infoHash: [UInt8]

    var pieceCount: Int { (payload.count + pieceLength - 1) / pieceLength }

    var fullBitfield: [UInt8] {
        var bits = [UInt8](repeating: 0, count: (pieceCount + 7) / 8)
        for piece in 0..<pieceCount { bits[piece / 8] |= 0x80 >> UInt8(piece % 8) }
        return bits
    }

    var blocksPerPiece: Int { pieceLength / 16_384 }

    var blockCount: Int { (payload.count + 16_383) / 16_384 }

    /// Where block `block` (numbered through the torrent) lies: piece, offset and length.
    func location(ofBlock block: Int) -> (piece: Int, begin: Int, length: Int) {
        let piece = block / blocksPerPiece
        let begin = block % blocksPerPiece * 16_384
        return (piece, begin, min(16_384, payload.count - piece * pieceLength - begin))
    }

    /// The block asked for, or nil if the request is out of the torrent or longer than 16 KiB.
    func block(piece: Int, begin: Int, length: Int) -> [UInt8]? {
        guard piece >= 0, piece < pieceCount, begin >= 0, length > 0, length <= 16_384 else { return nil }
        let start = piece * pieceLength + begin
        let pieceEnd = min(payload.count, (piece + 1) * pieceLength)
        guard start + length <= pieceEnd else { return nil }
        return Array(payload[start..<start + length])
    }
}
