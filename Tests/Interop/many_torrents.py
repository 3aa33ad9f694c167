#!/usr/bin/env python3
"""Makes many small single-file v1 torrents and their data, as a seeding server would hold them.

    many_torrents.py DIR --count 10000 [--min-bytes 16384] [--max-bytes 65536] [--piece-bytes 16384]
                     [--tracker URL]

DIR/data/tNNNNN.bin holds each torrent's random payload and DIR/torrents/tNNNNN.torrent its metainfo
(no tracker). Sizes are drawn from a seeded generator, so the same arguments make the same torrents.
Prints one JSON object: the folders, the count and the infohashes (hex, in order).
"""

import argparse
import hashlib
import json
import os
import random


CHUNK = 64 << 20


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--min-bytes", type=int, default=16384)
    parser.add_argument("--max-bytes", type=int, default=65536)
    parser.add_argument("--piece-bytes", type=int, default=16384)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracker", metavar="URL", help="announce URL (the infohashes do not depend on it)")
    args = parser.parse_args()
    generator = random.Random(args.seed)
    data_dir = os.path.join(args.directory, "data")
    torrent_dir = os.path.join(args.directory, "torrents")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(torrent_dir, exist_ok=True)
    hashes = []
    for index in range(args.count):
        name = f"t{index:05d}.bin"
        size = generator.randint(args.min_bytes, args.max_bytes)
        # randbytes takes at most 2**31 - 1 bits at once; smaller payloads stay one call (same bytes).
        payload = b"".join(
            generator.randbytes(min(CHUNK, size - offset)) for offset in range(0, size, CHUNK)
        )
        pieces = b"".join(
            hashlib.sha1(payload[offset : offset + args.piece_bytes]).digest()
            for offset in range(0, len(payload), args.piece_bytes)
        )
        info = {"length": len(payload), "name": name, "piece length": args.piece_bytes, "pieces": pieces}
        with open(os.path.join(data_dir, name), "wb") as out:
            out.write(payload)
        metainfo = {"info": info, "created by": "many_torrents.py"}
        if args.tracker:
            metainfo["announce"] = args.tracker
        with open(os.path.join(torrent_dir, f"t{index:05d}.torrent"), "wb") as out:
            out.write(bencode(metainfo))
        hashes.append(hashlib.sha1(bencode(info)).hexdigest())
    print(json.dumps({"data": data_dir, "torrents": torrent_dir, "count": args.count, "hashes": hashes}))


if __name__ == "__main__":
    main()
