import Metainfo
import TorrentModel

/// One HTTP range to ask a web seed for: part of one file, and where it lands in the payload.
public struct PlannedFetch: Hashable, Sendable {
    /// The index into ``Metainfo/FileLayout/files``.
    public var fileIndex: Int
    /// The bytes of that file.
    public var fileRange: Range<Int64>
    /// Where `fileRange.lowerBound` lies in the torrent's payload.
    public var payloadOffset: Int64
    /// A BEP 47 padding file: zeros, never asked for.
    public var isPadding: Bool
}

/// Turns the blocks a web seed was given into few, large HTTP requests: adjacent blocks are joined into
/// runs of at most `maxFetchBytes`, and each run is cut at file boundaries (a server has one URL per
/// file, BEP 19).
public enum FetchPlan {
    /// The fetches for `blocks` (in any order, none twice), in payload order.
    public static func fetches(
        for blocks: [BlockRange], layout: FileLayout, maxFetchBytes: Int
    ) -> [PlannedFetch] {
        precondition(maxFetchBytes > 0)
        let geometry = layout.geometry
        let sorted = blocks.map { geometry.offset(of: $0.piece) + Int64($0.offset) }
            .enumerated().sorted { $0.element < $1.element }
        var runs: [(offset: Int64, length: Int)] = []
        for (index, offset) in sorted {
            let length = Int(blocks[index].length)
            if let last = runs.last, last.offset + Int64(last.length) == offset,
                last.length + length <= maxFetchBytes
            {
                runs[runs.count - 1].length += length
            } else {
                runs.append((offset, length))
            }
        }
        var fetches: [PlannedFetch] = []
        for run in runs {
            var payloadOffset = run.offset
            layout.forEachSpan(offset: run.offset, length: run.length) { span in
                fetches.append(
                    PlannedFetch(
                        fileIndex: span.fileIndex,
                        fileRange: span.fileOffset..<span.fileOffset + Int64(span.length),
                        payloadOffset: payloadOffset, isPadding: span.isPadding))
                payloadOffset += Int64(span.length)
            }
        }
        return fetches
    }
}
