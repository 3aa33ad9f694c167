import TorrentModel
import TransmissionRPC

extension StoredTorrent {
    /// The engine's priority for each of `fileCount` files from what RPC clients chose: unwanted files
    /// are skipped, the others at their Transmission priority (normal unless set).
    func enginePriorities(fileCount: Int) -> [FilePriority] {
        let unwanted = Set(unwantedFiles)
        return (0..<fileCount).map { index in
            if unwanted.contains(index) { return .skip }
            switch filePriorities[index].flatMap(Priority.init(rawValue:)) {
            case .low: return .low
            case .high: return .high
            case .normal, nil: return .normal
            }
        }
    }
}
