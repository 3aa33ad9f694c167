import TLS
import Tracker

extension TLSConnection {
    /// A client for `url`'s server: its host name is sent as SNI and checked against the certificate,
    /// or its numeric address is checked against the certificate's addresses.
    convenience init(context: TLSContext, for url: TrackerURL) throws(TLSError) {
        switch url.host {
        case .name(let name): try self.init(context: context, host: name, hostIsAddress: false)
        case .ipv4(let address):
            try self.init(context: context, host: address.description, hostIsAddress: true)
        case .ipv6(let address):
            try self.init(context: context, host: address.description, hostIsAddress: true)
        }
    }
}
