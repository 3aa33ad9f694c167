import Engine

// The engine and the RPC both name a type `TorrentSnapshot`, and the module `Engine` shares its name
// with its class, so `Engine.TorrentSnapshot` cannot be written: this file sees the engine's alone.

/// A torrent as the engine reports it.
typealias EngineTorrentSnapshot = TorrentSnapshot
