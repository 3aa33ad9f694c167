import Buffers
import TorrentModel

/// A request made of a `PieceStore`, named again in its failure so the caller gets its buffer back.
public enum StorageRequest: Hashable, Sendable {
    /// ``PieceStore/writePiece(_:from:in:)``.
    case writePiece(PieceIndex, BufferSlot)
    /// ``PieceStore/readPiece(_:into:in:)``.
    case readPiece(PieceIndex, BufferSlot)
    /// ``PieceStore/readBlock(_:into:token:)`` or ``PieceStore/readBlock(_:into:in:token:)``.
    case readBlock(token: UInt64, BlockRange)
    /// ``PieceStore/flush()``.
    case flush
}

extension StorageRequest {
    /// What a failure before any file is touched names instead of a path.
    var subject: String {
        switch self {
        case .writePiece(let piece, _), .readPiece(let piece, _): "\(piece)"
        case .readBlock(_, let block): "\(block)"
        case .flush: "the download directory"
        }
    }

    var operation: StorageError.Operation {
        switch self {
        case .writePiece: .write
        case .readPiece, .readBlock: .read
        case .flush: .sync
        }
    }
}

/// What a `PieceStore` reports from `handle(_:into:)`.
public enum StorageEvent: Hashable, Sendable {
    /// Every byte of the piece is written (to the page cache, or to the device with direct writes); the
    /// slot is the caller's again. Durable only after a flush.
    case pieceWritten(PieceIndex, BufferSlot)
    /// The piece fills the slot (padding as zeros).
    case pieceRead(PieceIndex, BufferSlot)
    /// The block fills the caller's buffer.
    case blockRead(token: UInt64, BlockRange)
    /// Every file written before the `flush()` call is on stable storage.
    case flushed
    /// The request failed; its buffer (if any) is the caller's again, its contents intact.
    case failed(StorageRequest, StorageError)
}
