/// Potluck's version: what `--version` prints and what peers see in the BEP 10 handshake.
public let potluckVersion = "0.1.0"
