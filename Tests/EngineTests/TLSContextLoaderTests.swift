import Foundation
import Testing

@testable import Engine

/// The certificate store loads off the caller's thread: nothing at first, then the same answer to
/// every call, and to every loader sharing the cache. Each test has a cache of its own, so that loads
/// made elsewhere in the process do not answer for it.
@Suite struct TLSContextLoaderTests {
    /// Asks until the load has finished (a few tens of milliseconds), at most ten seconds.
    static func loaded(_ loader: TLSContextLoader) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while !loader.isLoaded && Date() < deadline { usleep(5_000) }
        return loader.isLoaded
    }

    @Test func theSystemStoreLoadsInTheBackground() throws {
        let cache = TLSContextCache()
        let loader = TLSContextLoader(extraCAFile: nil, waker: nil, cache: cache)
        #expect(loader.context() == nil, "the first call starts the load and does not wait for it")
        #expect(Self.loaded(loader))
        let first = try #require(try loader.context()?.get())
        #expect(try loader.context()?.get() === first, "one load, one context")
        let another = TLSContextLoader(extraCAFile: nil, waker: nil, cache: cache)
        #expect(try another.context()?.get() === first, "one context for every torrent in the process")
        let withCA = TLSContextLoader(extraCAFile: "/nonexistent/ca.pem", waker: nil, cache: cache)
        #expect(withCA.context() == nil, "another CA file is another load")
    }

    @Test func aMissingCAFileIsReportedWithItsName() {
        let loader = TLSContextLoader(
            extraCAFile: "/nonexistent/ca.pem", waker: nil, cache: TLSContextCache())
        _ = loader.context()
        #expect(Self.loaded(loader))
        guard case .failure(let error)? = loader.context() else {
            Issue.record("a missing CA file was accepted")
            return
        }
        #expect(error.description.hasPrefix("loading CA file /nonexistent/ca.pem"), "\(error)")
    }
}
