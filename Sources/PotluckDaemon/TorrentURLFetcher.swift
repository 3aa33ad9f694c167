import Foundation
import TransmissionRPC

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Fetches what a `torrent-add` URL names, as indexers (Jackett, Prowlarr) hand them to Sonarr and
/// Radarr: a .torrent file, or a redirect to a magnet link. Bounded: at most `maximumBytes`, at most
/// `timeoutSeconds`, http and https only, redirects followed by URLSession (a redirect to `magnet:`
/// ends the fetch with that link).
enum TorrentURLFetcher {
    enum Fetched: Equatable {
        case metainfo([UInt8])
        case magnet(String)
    }

    static let maximumBytes = 16 << 20
    static let timeoutSeconds = 30.0

    static func fetch(_ text: String) async throws -> Fetched {
        let url = try OutgoingHTTP.url(
            text, refusal: "cannot add \(text): only http and https URLs are fetched")
        let delegate = Delegate()
        let session = URLSession(
            configuration: OutgoingHTTP.configuration(timeoutSeconds: timeoutSeconds), delegate: delegate,
            delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            delegate.start(session.dataTask(with: url), continuation: continuation, url: text)
        }
    }

    /// Collects the body within the limit and finishes the continuation exactly once.
    private final class Delegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        private let lock = NSLock()
        private var continuation: CheckedContinuation<Fetched, any Error>?
        private var body: [UInt8] = []
        private var url = ""

        func start(
            _ task: URLSessionDataTask, continuation: CheckedContinuation<Fetched, any Error>, url: String
        ) {
            lock.withLock {
                self.continuation = continuation
                self.url = url
            }
            task.resume()
        }

        private func finish(_ result: Result<Fetched, any Error>) {
            let continuation = lock.withLock {
                defer { self.continuation = nil }
                return self.continuation
            }
            continuation?.resume(with: result)
        }

        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
            newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
        ) {
            // The raw header: Foundation may read `magnet:?…` as a path relative to the page.
            let location = response.value(forHTTPHeaderField: "Location") ?? request.url?.absoluteString
            if let target = location, target.lowercased().hasPrefix("magnet:") {
                finish(.success(.magnet(target)))
                completionHandler(nil)
                task.cancel()
                return
            }
            completionHandler(request)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            let tooLarge = lock.withLock {
                body += data
                return body.count > TorrentURLFetcher.maximumBytes
            }
            if tooLarge {
                finish(
                    .failure(RPCFailure("\(url) sent more than \(TorrentURLFetcher.maximumBytes >> 20) MiB")))
                dataTask.cancel()
            }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?)
        {
            if let error {
                finish(.failure(RPCFailure("cannot fetch \(url): \(error.localizedDescription)")))
                return
            }
            if let response = task.response as? HTTPURLResponse, !(200..<300).contains(response.statusCode) {
                finish(.failure(RPCFailure("cannot fetch \(url): HTTP \(response.statusCode)")))
                return
            }
            finish(.success(.metainfo(lock.withLock { body })))
        }
    }
}
