import TLS
import Tracker

/// Shared by the engine's trackers and web seeds (on the ring) and `OutboundHTTP` (blocking).
extension TLSConnection {
    /// A client for `url`'s server: its host name is sent as SNI and checked against the certificate,
    /// or its numeric address is checked against the certificate's addresses.
    public convenience init(context: TLSContext, for url: TrackerURL) throws(TLSError) {
        switch url.host {
        case .name(let name): try self.init(context: context, host: name, hostIsAddress: false)
        case .ipv4(let address):
            try self.init(context: context, host: address.description, hostIsAddress: true)
        case .ipv6(let address):
            try self.init(context: context, host: address.description, hostIsAddress: true)
        }
    }
}
