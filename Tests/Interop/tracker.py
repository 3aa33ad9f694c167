#!/usr/bin/python3
"""Run Debian's opentracker for interop tests, and announce to trackers by hand.

Debian's opentracker serves only whitelisted info hashes, chroots to its rootdir and drops root
privileges (to nobody, its default); this tool gives it a private temporary rootdir holding the
whitelist (v1 info hashes, 40 hex digits).

  start --http-port P --udp-port Q --whitelist HEX... [--bind ADDR]...
      → {"http": "http://127.0.0.1:P/announce", "udp": "udp://127.0.0.1:Q/announce", "pid": n}
        once it has loaded its whitelist and accepts announces over both (a probe peer is
        announced and withdrawn); then runs until stdin closes or SIGTERM/SIGINT.
        Port 0 picks a free port. --bind (repeatable, default 127.0.0.1) must be loopback or a
        harness namespace address; the URLs name the first.
  announce URL --infohash HEX --port PORT [--source ADDR] [--left N] [--event started|stopped|...]
      → {"peers": ["ip:port", ...], "interval": n}, or {"failure": "reason"} with exit status 3
        (for example "Requested download is not authorized for use with this tracker.")
        The tracker records the announcing socket's address, so --source chooses the peer's address.

Exit status: 0 success, 1 failure, 2 usage error, 3 tracker refused the announce, 128+N signal N.
"""

import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def cmd_start(args):
    with contextlib.ExitStack() as stack:
        binds = args.bind or ["127.0.0.1"]
        http_port = args.http_port or common.free_port(binds[0])
        udp_port = args.udp_port or common.free_port(binds[0], common.socket.SOCK_DGRAM)
        proc, urls = common.start_opentracker(stack, http_port, udp_port, args.whitelist, binds,
                                              timeout=args.timeout)
        common.emit({**urls, "pid": proc.pid})
        common.serve_until_stdin_closes([proc])
        common.log("stdin closed; stopping opentracker")
    return 0


def cmd_announce(args):
    result = common.announce(args.url, args.infohash, args.port, source=args.source, left=args.left,
                             event=args.event, timeout=args.timeout)
    common.emit(result)
    return 3 if "failure" in result else 0


def main():
    parser = argparse.ArgumentParser(prog="tracker.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="run opentracker until stdin closes",
        description="run opentracker until stdin closes; output and exit status: tracker.py --help")
    p.add_argument("--http-port", type=int, required=True, metavar="P")
    p.add_argument("--udp-port", type=int, required=True, metavar="Q")
    p.add_argument("--whitelist", nargs="+", required=True, metavar="HEX", help="v1 info hashes to serve")
    p.add_argument("--bind", action="append", metavar="ADDR", help="listen address (repeatable)")
    p.add_argument("--timeout", type=float, default=10, metavar="S", help="limit for start-up")
    p.set_defaults(func=cmd_start)
    p = sub.add_parser("announce", help="one announce (HTTP or UDP) and its answer",
        description="one announce (HTTP or UDP) and its answer; output and exit status: tracker.py --help")
    p.add_argument("url", metavar="URL")
    p.add_argument("--infohash", required=True, metavar="HEX")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", metavar="ADDR", help="local address to announce from")
    p.add_argument("--left", type=int, default=0, help="bytes left (0: a seeder)")
    p.add_argument("--event", default="started", choices=["started", "stopped", "completed", "none"])
    p.add_argument("--timeout", type=float, default=5, metavar="S")
    p.set_defaults(func=cmd_announce)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
