#!/usr/bin/python3
"""Shaped links for benchmarks: peers in namespaces of their own, joined through a bridge (root only).

Each peer gets a harness namespace plk-N (see netns.py); a hub namespace plk-H holds a bridge, and each
peer's veth end that netns.py leaves in the root namespace is moved into the hub and enslaved to the
bridge. Peers share the subnet 10.77.H.0/24 (peer i has 10.77.H.(10+i)), so they reach one another
only through the bridge, and the root namespace's routes and settings are not touched. Every link is
shaped in both directions with tbf at --rate (the peer's side shapes what it sends, the hub's side what
it receives), so each peer has a full-duplex link of that rate. --rtt-ms adds netem delay (half on
each side) where the kernel has sch_netem; where it does not, the output says so and no delay is
applied.

  create --peers K --rate RATE [--rtt-ms MS]
      → {"hub": "plk-H", "peers": [{"netns": "plk-N", "address": "10.77.H.10", "veth": "plkN-n"}, ...],
         "rate_bits_per_second": n, "rtt_ms": MS, "delay_applied": bool, "note": "..."}
        RATE is bits per second with an optional k/m/g suffix (1g = 10^9).
  delete HUB PEER...
      → {"deleted": [...]}: deletes the namespaces (and with them every veth, the bridge and the qdiscs)
  stats NETNS VETH
      → {"tx_bytes": n, "rx_bytes": n} of a peer's veth

Run it with POTLUCK_INTEROP_RUN=ID like the other tools and `netns.py cleanup --run ID` removes what
a killed run left. Exit status: 0 success, 1 failure, 2 usage error.
"""

import argparse
import contextlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HarnessError  # noqa: E402


def parse_rate(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)(?:bit|bps)?", text.strip().lower())
    if not m:
        raise HarnessError(f"--rate {text!r}: expected a number of bits per second like 1g, 100m or 500k")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    if value < 1e5:
        raise HarnessError("--rate must be at least 100k")
    return int(value)


def shape(netns, dev, rate, delay_ms):
    """tbf at `rate` on dev's egress, under a netem delay if asked; returns whether the delay held."""
    # A burst of at least one timer tick's worth of data at the rate (and of a 64 KiB GSO packet).
    burst = max(rate // 8 // 250, 131072)
    tbf = ["rate", f"{rate}bit", "burst", str(burst), "latency", "50ms"]
    if delay_ms > 0:
        result = common.subprocess.run(
            ["ip", "netns", "exec", netns, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem",
             "delay", f"{delay_ms / 2:g}ms", "limit", "100000"],
            capture_output=True, text=True, timeout=20)
        if result.returncode == 0:
            common.subprocess.run(["ip", "netns", "exec", netns, "tc", "qdisc", "add", "dev", dev, "parent", "1:",
                                   "handle", "2:", "tbf", *tbf], check=True, capture_output=True, text=True,
                                  timeout=20)
            return True
    common.subprocess.run(["ip", "netns", "exec", netns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", *tbf],
                          check=True, capture_output=True, text=True, timeout=20)
    return False


def cmd_create(args):
    rate = parse_rate(args.rate)
    if not 1 <= args.peers <= 60:
        raise HarnessError("--peers must be 1..60")
    made = []
    with contextlib.ExitStack() as stack:
        def remember(ns):
            made.append(ns["netns"])
            stack.callback(common.netns_delete, ns["netns"])
            return ns
        with common.signals_deferred():
            hub = remember(common.netns_create())
        hub_name, hub_index = hub["netns"], hub["index"]
        common.ip("-n", hub_name, "link", "add", "br0", "type", "bridge")
        common.ip("-n", hub_name, "link", "set", "br0", "up")
        peers, delays = [], []
        for i in range(args.peers):
            with common.signals_deferred():
                ns = remember(common.netns_create())
            index = ns["index"]
            root_veth, peer_veth = f"plk{index}-r", f"plk{index}-n"
            address = f"{common.SUBNET}.{hub_index}.{10 + i}"
            common.ip("link", "set", root_veth, "netns", hub_name)
            common.ip("-n", hub_name, "link", "set", root_veth, "master", "br0")
            common.ip("-n", hub_name, "link", "set", root_veth, "up")
            common.ip("-n", ns["netns"], "addr", "add", f"{address}/24", "dev", peer_veth)
            delays.append(shape(ns["netns"], peer_veth, rate, args.rtt_ms))
            delays.append(shape(hub_name, root_veth, rate, args.rtt_ms))
            peers.append({"netns": ns["netns"], "address": address, "veth": peer_veth})
        applied = bool(delays) and all(delays)
        note = ""
        if args.rtt_ms > 0 and not applied:
            note = ("netem (sch_netem) is not available in this kernel: no delay applied, "
                    "links are rate-limited only")
        common.emit({"hub": hub_name, "peers": peers, "rate_bits_per_second": rate, "rtt_ms": args.rtt_ms,
                     "delay_applied": applied if args.rtt_ms > 0 else False, "note": note})
        stack.pop_all()  # the caller deletes them
    return 0


def cmd_delete(args):
    for name in args.names:
        if not name.startswith(common.NS_PREFIX):
            raise HarnessError(f"{name} is not a harness namespace ({common.NS_PREFIX}N)")
    for name in args.names:
        common.netns_delete(name)
    common.emit({"deleted": args.names})
    return 0


def cmd_stats(args):
    counters = {}
    for key in ("tx_bytes", "rx_bytes"):
        out = common.subprocess.run(["ip", "netns", "exec", args.netns, "cat",
                                     f"/sys/class/net/{args.veth}/statistics/{key}"],
                                    capture_output=True, text=True, timeout=20, check=True).stdout
        counters[key] = int(out.strip())
    common.emit(counters)
    return 0


def main():
    parser = argparse.ArgumentParser(prog="linknet.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create", help="peers in namespaces joined by shaped links through a bridge",
        description="peers joined by shaped links; output and exit status: linknet.py --help")
    p.add_argument("--peers", type=int, required=True, metavar="K")
    p.add_argument("--rate", required=True, metavar="RATE", help="bits per second per link, e.g. 1g")
    p.add_argument("--rtt-ms", type=float, default=0, metavar="MS", help="round-trip delay (needs sch_netem)")
    p.set_defaults(func=cmd_create)
    p = sub.add_parser("delete", help="delete the hub and peer namespaces",
        description="delete the hub and peer namespaces; output and exit status: linknet.py --help")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_delete)
    p = sub.add_parser("stats", help="byte counters of a peer's veth",
        description="byte counters of a peer's veth; output and exit status: linknet.py --help")
    p.add_argument("netns", metavar="NETNS")
    p.add_argument("veth", metavar="VETH")
    p.set_defaults(func=cmd_stats)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise HarnessError("network namespaces and tc need root")
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
