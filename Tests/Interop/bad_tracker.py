#!/usr/bin/python3
"""A deliberately misbehaving BitTorrent tracker for tests (stdlib only), on loopback.

  bad_tracker.py MODE [--bind ADDR] [--named-peer NAME:PORT]... [--requests FILE]
      → {"http": "http://ADDR:P/announce", "udp": "udp://ADDR:Q/announce", "mode": MODE} once
        listening; serves until stdin closes or SIGTERM/SIGINT.

Every HTTP request and every UDP datagram is answered according to MODE:
  garbage      HTTP 200 with a body that is not bencode; UDP: random bytes
  oversized    HTTP 200 announcing a 64 MiB body and streaming it; UDP: a connect reply, then an
               announce reply claiming far more peers than a datagram can hold (a truncated list)
  failure      a bencoded "failure reason"; UDP: a BEP 15 error packet
  silent       accepts and reads, never answers (HTTP); drops every datagram (UDP)
  peers        an announce listing 5000 compact peers (above any client's limit); UDP: same
  wrong-txn    HTTP: like garbage; UDP: answers with the wrong transaction id
  named        not misbehaving: an HTTP announce whose peers are in BEP 3's dictionary form with a DNS
               name as "ip" (each --named-peer, and one name that does not resolve); UDP: silent
  plain        not misbehaving: an HTTP announce with no peers and an interval of 30 minutes; UDP: silent
With --requests, the request line of every HTTP request is appended to FILE as it arrives, so that
tests can count announces and read their parameters.
The reason a client gives for each can be checked against the mode name in tests.
Exit status: 0 success, 1 failure, 2 usage error, 128+N signal N.
"""

import argparse
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MODES = ["garbage", "oversized", "failure", "silent", "peers", "wrong-txn", "named", "plain"]
UNRESOLVABLE = "no-such-peer.invalid"  # RFC 2606: never resolves
FAILURE = b"d14:failure reason33:this tracker refuses you politelye"


def bencoded_string(text):
    return str(len(text.encode())).encode() + b":" + text.encode()


def http_body(mode, named_peers):
    if mode == "named":
        peers = [(name, int(port)) for name, port in (p.rsplit(":", 1) for p in named_peers)]
        peers.append((UNRESOLVABLE, 6881))
        entries = b"".join(b"d2:ip" + bencoded_string(name) + b"4:porti" + str(port).encode() + b"ee"
                           for name, port in peers)
        return b"d8:intervali1800e5:peersl" + entries + b"ee"
    if mode == "failure":
        return FAILURE
    if mode == "plain":
        return b"d8:intervali1800e5:peers0:e"
    if mode == "peers":
        blob = b"".join(struct.pack(">IH", 0x7F000001, 1 + i) for i in range(5000))
        return b"d8:intervali1800e5:peers" + str(len(blob)).encode() + b":" + blob + b"e"
    return b"<html>this is not bencode</html>"


def record_request(path, request):
    with open(path, "ab") as log:
        log.write(request.split(b"\r\n", 1)[0] + b"\n")


def serve_http(conn, mode, named_peers, requests):
    with conn:
        conn.settimeout(60)
        try:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            if requests:
                record_request(requests, request)
            if mode == "silent":
                while conn.recv(4096):
                    pass
                return
            if mode == "oversized":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n")
                block = b"d" * 65536
                for _ in range(1024):
                    conn.sendall(block)
                return
            body = http_body(mode, named_peers)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        except OSError:
            pass


def http_loop(listener, mode, named_peers, requests):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve_http, args=(conn, mode, named_peers, requests), daemon=True).start()


def udp_reply(datagram, mode):
    if len(datagram) < 16 or mode in ("silent", "named", "plain"):
        return None
    action, txn = struct.unpack(">II", datagram[8:16])
    if mode == "garbage":
        return os.urandom(37)
    if mode == "failure":
        return struct.pack(">II", 3, txn) + b"this tracker refuses you politely"
    if mode == "wrong-txn":
        return struct.pack(">IIQ", 0, txn ^ 0x5A5A5A5A, 0x1122334455667788)
    if action == 0:
        return struct.pack(">IIQ", 0, txn, 0x1122334455667788)
    if action == 1 and mode == "peers":
        blob = b"".join(struct.pack(">IH", 0x7F000001, 1 + i) for i in range(1200))
        return struct.pack(">IIIII", 1, txn, 1800, 0, 1200) + blob
    if action == 1 and mode == "oversized":
        return struct.pack(">IIIII", 1, txn, 1800, 0, 4_000_000_000) + b"\x7f\x00\x00\x01\x00"
    return os.urandom(37)


def udp_loop(sock, mode):
    while True:
        try:
            datagram, address = sock.recvfrom(65536)
        except OSError:
            return
        reply = udp_reply(datagram, mode)
        if reply is not None:
            try:
                sock.sendto(reply, address)
            except OSError:
                pass


def main():
    parser = argparse.ArgumentParser(prog="bad_tracker.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="loopback address to listen on")
    parser.add_argument("--named-peer", action="append", default=[], metavar="NAME:PORT",
                        help="a peer to list by name in mode named (the name must resolve to loopback)")
    parser.add_argument("--requests", metavar="FILE", help="append each HTTP request line to FILE")
    args = parser.parse_args()
    common.check_allowed_address(args.bind)
    for peer in args.named_peer:
        name, _, port = peer.rpartition(":")
        if not name or not port.isdigit():
            raise common.HarnessError(f"--named-peer {peer} is not NAME:PORT")
        common.check_allowed_address(socket.gethostbyname(name))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, 0))
    listener.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.bind, 0))
    threading.Thread(target=http_loop, args=(listener, args.mode, args.named_peer, args.requests),
                     daemon=True).start()
    threading.Thread(target=udp_loop, args=(udp, args.mode), daemon=True).start()
    common.emit({"http": f"http://{args.bind}:{listener.getsockname()[1]}/announce",
                 "udp": f"udp://{args.bind}:{udp.getsockname()[1]}/announce", "mode": args.mode})
    common.serve_until_stdin_closes()
    listener.close()
    udp.close()
    return 0


if __name__ == "__main__":
    common.run_tool(main)
