import Buffers
import Glibc
import PeerWire
import Storage
import Swarm
import TorrentModel
import URing

/// One connection as the reactor sees it: the socket, the protocol state machine, and what is in flight
/// on the ring for it.
///
/// Invariants: at most one connect, one receive (multishot or single) and one send are in flight; the
/// bytes being sent live in `sending` until their completion, while new messages accumulate in
/// `connection.outbound`; `generation` changes whenever the link's table entry is reused, so a
/// completion for an earlier connection in the same entry is recognised and dropped.
final class PeerLink {
    let slot: PeerSlot
    let generation: UInt16
    /// The torrent's number on its reactor, stamped on the link's ring tokens.
    let tenant: UInt16
    let address: SocketAddress
    let fd: Int32
    var connection: PeerConnection
    var connected = false
    var connectInFlight = false
    var receiveInFlight = false
    var sendInFlight = false
    /// Bytes handed to the kernel, and how many of them it has taken so far.
    var sending: [UInt8] = []
    var sendOffset = 0
    /// For rings without provided buffers: this connection's own receive buffer.
    var receiveBuffer: UnsafeMutableRawBufferPointer?
    /// The block whose payload is being dropped (its first bytes found no piece buffer).
    var droppingBlock: BlockRange?
    /// A block another peer was writing when this one began it (`DownloadSession.claimBlock`): its
    /// bytes gather in `staging` and go into the piece buffer whole if this peer completes it first.
    var stagedBlock: BlockRange?
    var staging: [UInt8] = []
    var closing = false
    /// The number the peer wants on our `ut_metadata` messages (nil: it does not take them).
    var peerMetadataExtensionID: UInt8?
    /// What this peer may still fetch of the info dictionary (made at its first request).
    var metadataServer: MetadataServer?
    /// BEP 11 peer exchange with this peer.
    var exchange = PeerExchangeLink()
    /// BEP 52 hash requests from this peer so far (only the first few are logged).
    var hashRequestCount = 0
    /// An incoming connection's first bytes decide between the plain handshake and an encrypted one
    /// (MSE/PE); until they arrive this is false. Outgoing connections always speak plain.
    var openingSeen: Bool
    /// An incoming peer's first bytes, while too few have arrived to tell a plain handshake from an
    /// encryption exchange.
    var openingBytes: [UInt8] = []
    /// The encryption exchange in progress, for an incoming peer that opened with one.
    var encryption: EncryptionHandshakeResponder?

    /// Requests from the peer waiting for a disk read or the cache, oldest first from `uploadQueueHead`
    /// (bounded by the connection's incoming request limit, plus requests it has since dropped).
    var uploadQueue: [BlockRange] = []
    var uploadQueueHead = 0
    /// Block reads into upload buffers in flight for this link.
    var readsInFlight = 0
    /// Block payloads that follow piece headers in `connection.outbound`, in stream order.
    var payloads: [QueuedPayload] = []
    /// The payloads of the send in flight (released when it completes or the link is released).
    var sendingPayloads: [QueuedPayload] = []
    /// The gather list for sends that carry payloads.
    var sendVector: SendVector?
    /// Whether the send in flight uses `sendVector`.
    var sendingVector = false

    init(
        slot: PeerSlot, generation: UInt16, tenant: UInt16, address: SocketAddress, fd: Int32,
        connection: PeerConnection, initiatedLocally: Bool
    ) {
        self.openingSeen = initiatedLocally
        self.slot = slot
        self.generation = generation
        self.tenant = tenant
        self.address = address
        self.fd = fd
        self.connection = connection
    }

    deinit {
        receiveBuffer?.deallocate()
    }

    /// Operations on the ring for this link: the slot index is the link's, the generation its reuse count.
    var operationSlot: OperationSlot {
        OperationSlot(owner: Reactor.peerOwner, tenant: tenant, index: slot.value, generation: generation)
    }

    var hasOperationsInFlight: Bool { connectInFlight || receiveInFlight || sendInFlight }
}

/// A block's payload to send from memory we do not copy: it goes on the wire right after byte
/// `position - 1` of the outbound bytes it was queued with (the end of its piece header).
struct QueuedPayload {
    enum Source {
        case uploadBuffer(BufferSlot)
        case cachedPiece(PieceIndex)
        /// Sent straight from the page cache (see `PieceStore.residentBlock`).
        case pageCache(FileMapping)
    }

    let position: Int
    let bytes: UnsafeRawBufferPointer
    let source: Source
}

/// A peer address we may (re)connect to, with back-off after failures.
