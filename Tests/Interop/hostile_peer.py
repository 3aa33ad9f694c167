#!/usr/bin/python3
"""A deliberately misbehaving BitTorrent seeder for tests (stdlib only).

  hostile_peer.py FILE MODE [--bind ADDR] [--tell HOST:PORT]
      → {"peer": "ADDR:PORT"} once listening; serves until stdin closes or SIGTERM.

It claims every piece (BEP 3 bitfield), unchokes at once, and answers requests according to MODE:
  corrupt      every block with the right length and wrong bytes (a liar to be banned)
  unrequested  blocks nobody asked for (a protocol violation to be dropped for)
  oversized    a message longer than any block (a length to be refused)
  metadata-liar   offers the info dictionary (BEP 9) and answers every ut_metadata request with
                  wrong bytes of the right length (for a magnet link's fetch to catch)
  metadata-huge   offers an info dictionary of 4 GiB (a size to be refused)
  metadata-pex    offers the info dictionary but refuses every piece of it, and names --tell HOST:PORT
                  in a ut_pex message (BEP 11): the peer to learn of while fetching metadata

  hostile_peer.py FILE request-MODE --connect HOST:PORT [--fast] [--piece N] [--count N]
      → {"disconnected": bool, "blocks": n, "rejects": n, "unchoked": bool} once done; exits.
It dials a seeder as a leecher (BEP 6 fast extension with --fast, then have-none), says interested,
waits for an unchoke (at most 15 s), makes hostile requests, then counts the answers for 3 s:
  request-lacking    one block of piece N (one the seeder lacks)
  request-oversized  a 256 KiB block of piece 0 (twice the largest any client asks for)
  request-range      a block of a piece past the torrent's end
  request-flood      --count distinct 16 KiB blocks at once (more than the seeder's reqq), never
                     reading until all are sent
Only loopback is ever used by the tests.
"""
import argparse, hashlib, json, os, signal, socket, struct, sys, threading


def read_exactly(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def info_hash_and_pieces(path):
    raw = open(path, "rb").read()
    # Find the info dictionary's exact bytes with a minimal bencode walker.
    def walk(i):
        c = raw[i:i + 1]
        if c == b"i":
            return raw.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while raw[i:i + 1] != b"e":
                i = walk(i)
            return i + 1
        colon = raw.index(b":", i)
        return colon + 1 + int(raw[i:colon])
    i = 1
    info = None
    pieces = None
    while raw[i:i + 1] != b"e":
        key_end = walk(i)
        key = raw[raw.index(b":", i) + 1:key_end]
        value_end = walk(key_end)
        if key == b"info":
            info = raw[key_end:value_end]
        i = value_end
    marker = b"6:pieces"
    at = info.index(marker) + len(marker)
    colon = info.index(b":", at)
    pieces = int(info[at:colon]) // 20
    marker = b"12:piece lengthi"
    at = info.index(marker) + len(marker)
    global PIECE_LENGTH
    PIECE_LENGTH = int(info[at:info.index(b"e", at)])
    global INFO
    INFO = info
    return hashlib.sha1(info).digest(), pieces


PIECE_LENGTH = 0
INFO = b""


def request_mode(args, info_hash, piece_count):
    """Dial a seeder and misbehave as a requester; report how it answered."""
    host, port = args.connect.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=15)
    reserved = bytearray(8)
    if args.fast:
        reserved[7] |= 0x04
    conn.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + info_hash + b"-HO0001-" + os.urandom(12))
    result = {"disconnected": False, "blocks": 0, "rejects": 0, "unchoked": False}

    def message():
        length = struct.unpack(">I", read_exactly(conn, 4))[0]
        if length == 0:
            return None, b""
        body = read_exactly(conn, length)
        return body[0], body[1:]

    try:
        read_exactly(conn, 68)
        if args.fast:
            conn.sendall(struct.pack(">IB", 1, 0x0f))  # have none
        conn.sendall(struct.pack(">IB", 1, 2))  # interested
        while not result["unchoked"]:
            kind, _ = message()
            result["unchoked"] = kind == 1
        def request(piece, begin, length):
            return struct.pack(">IBIII", 13, 6, piece, begin, length)
        mode = args.mode[len("request-"):]
        if mode == "lacking":
            conn.sendall(request(args.piece, 0, 16384))
        elif mode == "oversized":
            conn.sendall(request(0, 0, 256 * 1024))
        elif mode == "range":
            conn.sendall(request(piece_count, 0, 16384))
        else:
            blocks = [(p, b) for p in range(piece_count - 1) for b in range(0, PIECE_LENGTH, 16384)]
            conn.sendall(b"".join(request(p, b, 16384) for p, b in blocks[:args.count]))
        conn.settimeout(3)
        while True:
            kind, _ = message()
            if kind == 7:
                result["blocks"] += 1
            elif kind == 16:
                result["rejects"] += 1
    except socket.timeout:
        pass
    except (EOFError, OSError):
        result["disconnected"] = True
    print(json.dumps(result), flush=True)
    return 0


def extended(ext_id, payload):
    return struct.pack(">IBB", 2 + len(payload), 20, ext_id) + payload


def extension_id(handshake, name):
    marker = b"%d:%si" % (len(name), name)
    at = handshake.find(marker)
    return int(handshake[at + len(marker):handshake.index(b"e", at + len(marker))]) if at >= 0 else None


def serve_metadata(conn, mode, tell):
    """BEP 10 and 9 only: an extension handshake offering metadata, then wrong answers (or, with
    metadata-pex, refusals and a ut_pex message naming `tell`)."""
    size = 4 << 30 if mode == "metadata-huge" else len(INFO)
    if mode == "metadata-pex":
        conn.sendall(extended(0, b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei%dee" % size))
    else:
        conn.sendall(extended(0, b"d1:md11:ut_metadatai3ee13:metadata_sizei%dee" % size))
    their_id = None
    while True:
        length = struct.unpack(">I", read_exactly(conn, 4))[0]
        body = read_exactly(conn, length) if length else b""
        if len(body) < 2 or body[0] != 20:
            continue
        if body[1] == 0:
            their_id = extension_id(body, b"ut_metadata")
            their_pex = extension_id(body, b"ut_pex")
            if mode == "metadata-pex" and their_pex:
                host, port = tell
                added = socket.inet_aton(host) + struct.pack(">H", port)
                conn.sendall(extended(their_pex, b"d5:added6:" + added + b"7:added.f1:\x02e"))
        elif body[1] == 3 and their_id is not None:
            marker = b"5:piecei"
            at = body.index(marker) + len(marker)
            piece = int(body[at:body.index(b"e", at)])
            if mode == "metadata-pex":
                conn.sendall(extended(their_id, b"d8:msg_typei2e5:piecei%dee" % piece))
                continue
            chunk = INFO[piece * 16384:(piece + 1) * 16384]
            header = b"d8:msg_typei1e5:piecei%de10:total_sizei%dee" % (piece, len(INFO))
            conn.sendall(extended(their_id, header + bytes(b ^ 0x5a for b in chunk)))


def serve(conn, info_hash, piece_count, mode, tell):
    try:
        handshake = read_exactly(conn, 68)
        if handshake[28:48] != info_hash:
            return
        reserved = bytes([0, 0, 0, 0, 0, 0x10, 0, 0]) if mode.startswith("metadata-") else bytes(8)
        conn.sendall(b"\x13BitTorrent protocol" + reserved + info_hash + b"-HO0001-" + os.urandom(12))
        if mode.startswith("metadata-"):
            return serve_metadata(conn, mode, tell)
        bitfield = bytearray((piece_count + 7) // 8)
        for piece in range(piece_count):
            bitfield[piece // 8] |= 0x80 >> (piece % 8)
        conn.sendall(struct.pack(">IB", 1 + len(bitfield), 5) + bytes(bitfield))
        conn.sendall(struct.pack(">IB", 1, 1))  # unchoke
        if mode == "unrequested":
            conn.sendall(struct.pack(">IBII", 9 + 16384, 7, 0, 0) + os.urandom(16384))
        if mode == "oversized":
            conn.sendall(struct.pack(">IB", 4 * 1024 * 1024, 7))
        while True:
            length = struct.unpack(">I", read_exactly(conn, 4))[0]
            if length == 0:
                continue
            body = read_exactly(conn, length)
            if body[0] == 6 and mode == "corrupt":
                index, begin, size = struct.unpack(">III", body[1:13])
                conn.sendall(struct.pack(">IBII", 9 + size, 7, index, begin) + os.urandom(size))
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("torrent")
    parser.add_argument("mode", choices=["corrupt", "unrequested", "oversized", "metadata-liar",
                                         "metadata-huge", "metadata-pex", "request-lacking", "request-oversized",
                                         "request-range", "request-flood"])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--connect", metavar="HOST:PORT", help="the seeder, for the request modes")
    parser.add_argument("--fast", action="store_true", help="set the BEP 6 fast extension bit")
    parser.add_argument("--piece", type=int, default=0, help="the piece for request-lacking")
    parser.add_argument("--count", type=int, default=700, help="requests for request-flood")
    parser.add_argument("--tell", metavar="HOST:PORT", help="the peer metadata-pex names (loopback)")
    args = parser.parse_args()
    tell = None
    if args.mode == "metadata-pex":
        host, _, port = (args.tell or "").rpartition(":")
        if not host.startswith("127.") or not port.isdigit():
            parser.error("metadata-pex needs --tell with a loopback HOST:PORT")
        tell = (host, int(port))
    info_hash, piece_count = info_hash_and_pieces(args.torrent)
    if args.mode.startswith("request-"):
        if not args.connect or not args.connect.startswith("127."):
            parser.error("request modes need --connect with a loopback address")
        return request_mode(args, info_hash, piece_count)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, 0))
    listener.listen(16)
    print(json.dumps({"peer": "%s:%d" % listener.getsockname()}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, info_hash, piece_count, args.mode, tell), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
