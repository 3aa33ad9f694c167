#!/usr/bin/python3
"""A private BitTorrent DHT on loopback, made of libtorrent-rasterbar 2.0 sessions (Debian's
python3-libtorrent), and a libtorrent leecher that finds a seeder through it from a magnet link.

Must run under Debian's /usr/bin/python3: that is the interpreter that sees python3-libtorrent.
Each subcommand prints one JSON object on stdout; diagnostics go to stderr.

  start --nodes N [--seed TORRENT DATA_DIR] [--base 127.0.1.1|fd00:0:1::1] [--port P] [--timeout S]
      → {"nodes": ["127.0.1.1:PORT", "127.0.2.1:PORT", ...], "node_ids": [hex, ...],
         "seeder": "127.0.1.1:PORT"|null, "infohash": hex|null, "magnet": "magnet:?xt=urn:btih:..."|null,
         "stored_on": [...], "bootstrap_seconds": s, "announce_seconds": s|null}
        once every node's routing table holds at least min(N-1, 8) other nodes, and (with --seed) the
        first node seeds TORRENT from DATA_DIR and another node's get_peers lookup returned the
        seeder's address. Then runs until stdin closes or SIGTERM/SIGINT.
        Node i (i = 0..N-1) listens on the base address with i added to its third byte (127.0.1.1,
        127.0.2.1, ...): a /24 each, since libtorrent keeps one node per /24 by default. With an IPv6
        base (unique-local, fd00::/8; the caller adds the addresses to a namespace's loopback) the lab
        is an IPv6 DHT (BEP 32) instead, node i adding i to the third group (fd00:0:1::1,
        fd00:0:2::1, ...: a /48 each), and endpoints are written [ADDR]:PORT. TCP (peers)
        and UDP (DHT) share one port: --port P for every node, or by default a free port each.
        "magnet" has the info hash and name only (no trackers, no peers): the DHT must find the seeder.
        "stored_on" lists the nodes that accepted the seeder's announce_peer (libtorrent may count the
        seeder's own node among them). Node ids are random per run, and stay put while it runs.
        --timeout (default 60) bounds the bootstrap and, separately, the announce check; on failure
        the line is {"error": "...", ...} and the exit status 1.
  fetch MAGNET OUT_DIR --bootstrap IP:PORT [--bind IP] [--port P] [--timeout S]
      → {"ok": true, "seconds": s, "metadata_seconds": s, "bootstrap_seconds": s,
         "first_peer_seconds": s, "peers": ["IP:PORT", ...], "bytes": n}
        A leecher on its own /24 (default --bind 127.0.200.1) with the DHT on, told of one node only
        (--bootstrap). Once that node is in its routing table it adds the magnet, looks the info hash
        up in the DHT, fetches the info dictionary from the peers it finds (BEP 9) and downloads into
        OUT_DIR. "seconds" and "metadata_seconds" count from the magnet's addition (the DHT is up by
        then), "bootstrap_seconds" from the start. "peers" lists every peer it dialled (what the DHT
        returned, stale entries included). Exit 0 only when the download completed and passed its
        hash check within --timeout (default 60); otherwise {"ok": false, "error": "...", ...} and 1.

All addresses must be loopback (or, for IPv6, unique-local addresses in a namespace of the caller's). The sessions never contact libtorrent's default DHT routers, and
run no LSD, UPnP, NAT-PMP, uTP or peer exchange.
Exit status: 0 success, 1 failure (message on stderr), 2 usage error, 128+N killed by signal N.
"""

import argparse
import ipaddress
import os
import sys
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HarnessError  # noqa: E402

try:
    import libtorrent as lt
except ImportError:
    sys.exit("dht_lab.py: cannot import libtorrent; run it with Debian's /usr/bin/python3 "
             "(package python3-libtorrent)")

CAT = lt.alert.category_t
# dht_notification: incoming announces (who stored the seeder); dht_operation_notification: replies to
# our own get_peers lookups and the routing-table statistics.
ALERTS = CAT.error_notification | CAT.status_notification | CAT.storage_notification | \
    CAT.dht_notification | CAT.dht_operation_notification
ERROR_ALERTS = (lt.torrent_error_alert, lt.file_error_alert, lt.listen_failed_alert)


def lab_settings(listen):
    """Settings of every session here, lab nodes and leecher alike; every change from libtorrent
    2.0's defaults says why. Measured on 2.0.8 with one /24 per node, only dht_bootstrap_nodes
    (and introducing the nodes, adding the torrent late) is needed for the lab itself; the rest
    keeps it working with shared /24s, with a node under test, and over long runs."""
    return {
        # One address and port per node: TCP for peers, UDP for the DHT (and uTP, off below).
        "listen_interfaces": listen,
        # Peer connections from that address too (else the kernel picks 127.0.0.1 for every node).
        "outgoing_interfaces": listen.rpartition(":")[0].strip("[]"),
        "enable_dht": True,
        # Default "dht.libtorrent.org:25401": the lab must never leave loopback. Besides, libtorrent
        # never puts its routers in its routing table, so nodes are introduced with add_dht_node.
        "dht_bootstrap_nodes": "",
        # Only the DHT finds peers here; these would look for (or expose) peers elsewhere.
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        # TCP peer connections only, as the other tools (the DHT still runs on the UDP socket).
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        # Default True: one node per /24 in the routing table and in a lookup's result set (16 nodes
        # on 127.0.1.x get one neighbour each, and the bootstrap never completes). Each lab node has
        # a /24 of its own anyway, but a node under test (Potluck) may share one with the leecher or
        # other clients (127.0.0.1); it must not be dropped for that.
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        # Default True: drop nodes in reserved ranges. 127/8 passes libtorrent 2.0.8's test (the lab
        # converges with it on), but the lab's whole point is loopback, so nothing may depend on it.
        "dht_ignore_dark_internet": False,
        # Default True: prefer BEP 42 ids (derived from the external address) when a bucket is
        # full. Nobody here has an external address to derive one from, so a node under test with
        # any id must rank as the lab's own do (no measurable effect on the lab itself).
        "dht_prefer_verified_node_ids": False,
        # Default False already; pinned: with it on, nodes whose id does not match their address
        # under BEP 42 are ignored, and a node under test picks its id as it likes.
        "dht_enforce_node_id": False,
        # Default 5: an address sending more than 5 messages/s (50 in 10 s) is ignored for
        # dht_block_timeout (300 s). Measured: 180 pings at 20/s from one address get 82 answers
        # with the default, all 180 with this. A node under test that queries quickly (or a leecher
        # looking again and again) would silently drop out of the lab.
        "dht_block_ratelimit": 1000,
        # And if an address does get blocked anyway, for 5 s rather than for the rest of the test.
        "dht_block_timeout": 5,
        # Default 8000 bytes/s for all DHT traffic of a node: bootstrap pings N-1 nodes at once and
        # lookups answer with 8 nodes each; with many nodes or a busy node under test the limit
        # would queue them (no measurable effect at 16 nodes).
        "dht_upload_rate_limit": 10 * 1024 * 1024,
        # Default 900 s between a torrent's DHT announces (and a leecher's lookups). Re-announce every
        # 30 s so the lab keeps serving after nodes come and go, and a leecher retries soon.
        "dht_announce_interval": 30,
        # Default 20 failed queries before a node leaves the routing table; a stopped node under
        # test is replaced (and a restarted one taken back) sooner.
        "dht_max_fail_count": 3,
        # Several lab peers and a node under test may share an address.
        "allow_multiple_connections_per_ip": True,
        "alert_mask": ALERTS,
        # Seed to every requester at once.
        "unchoke_slots_limit": -1,
        "user_agent": "potluck-interop/libtorrent-" + lt.__version__,
    }


def peer_filter(own_address=None):
    """Peer connections only to and from loopback (the DHT lookups return only lab addresses, but a
    node under test could hand out anything); and, for the leecher, not to itself: it announces
    itself in the DHT like any libtorrent client, then finds itself and dials itself."""
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    f.add_rule("::1", "::1", 0)
    f.add_rule("fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0)
    if own_address:
        f.add_rule(own_address, own_address, 1)
    return f


class Node:
    """One libtorrent session with the DHT on, and what its alerts told us."""

    def __init__(self, address, port, extra_alerts=0, leecher=False):
        self.address, self.port = address, port
        self.endpoint = endpoint_text(address, port)
        settings = lab_settings(self.endpoint)
        settings["alert_mask"] |= extra_alerts
        self.session = lt.session(settings)
        self.session.set_ip_filter(peer_filter(address if leecher else None))
        self.table_size = 0        # nodes in the routing table, from the last dht_stats_alert
        self.stats_pending = False
        self.found = {}            # info hash (hex) -> set of "ip:port" from get_peers replies
        self.announced = set()     # (info hash, "ip:port") announce_peer messages this node took
        self.metadata_at = None
        self.connected = {}        # "ip:port" of each peer connection -> when it was made

    def node_id(self):
        """The DHT node id (hex); random per run, and stable on loopback (no external address is
        ever voted in, so no BEP 42 id replaces it)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # save_state: the only way in Python
            ids = self.session.save_state().get(b"dht state", {}).get(b"node-id", [])
        return ids[0][:20].hex() if ids else None

    def pump(self):
        for alert in self.session.pop_alerts():
            if isinstance(alert, ERROR_ALERTS):
                raise HarnessError(f"{self.endpoint}: {alert.message()}")
            if isinstance(alert, lt.dht_stats_alert):
                self.table_size = sum(bucket["num_nodes"] for bucket in alert.routing_table)
                self.stats_pending = False
            elif isinstance(alert, lt.dht_get_peers_reply_alert):
                peers = self.found.setdefault(str(alert.info_hash), set())
                peers.update(endpoint_text(ip, port) for ip, port in alert.peers())
            elif isinstance(alert, lt.dht_announce_alert):
                self.announced.add((str(alert.info_hash), endpoint_text(alert.ip, alert.port)))
            elif isinstance(alert, lt.metadata_received_alert) and self.metadata_at is None:
                self.metadata_at = time.monotonic()
            elif isinstance(alert, lt.peer_connect_alert):
                self.connected.setdefault(endpoint_text(*alert.endpoint), time.monotonic())
            elif isinstance(alert, lt.hash_failed_alert):
                common.log(f"{self.endpoint}: {alert.message()}")

    def ask_stats(self):
        if not self.stats_pending:
            self.stats_pending = True
            self.session.post_dht_stats()

    def check_listening(self):
        if not self.session.is_listening() or self.session.listen_port() != self.port:
            raise HarnessError(f"{self.endpoint}: not listening (address or port taken?)")


def endpoint_text(address, port):
    """ADDR:PORT, or [ADDR]:PORT for IPv6."""
    address = str(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def free_ipv6_port(address):
    """A port free for both TCP and UDP on an IPv6 address (common.free_tcp_udp_port is IPv4)."""
    for _ in range(50):
        with common.socket.socket(common.socket.AF_INET6, common.socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
            with common.socket.socket(common.socket.AF_INET6, common.socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                    return port
                except OSError:
                    continue
    raise HarnessError(f"no free TCP+UDP port on {address}")


def claim_port(address, port):
    """A free TCP+UDP port on address: the one asked for, checked, or any. libtorrent binds with
    SO_REUSEADDR, so a UDP port another lab already holds would be shared silently (each datagram
    going to one of the two), not refused; these probes bind without it and are refused."""
    family = common.socket.AF_INET6 if ":" in address else common.socket.AF_INET
    if not port:
        if family == common.socket.AF_INET6:
            return free_ipv6_port(address)
        return common.free_tcp_udp_port(address)
    for kind in (common.socket.SOCK_STREAM, common.socket.SOCK_DGRAM):
        with common.socket.socket(family, kind) as probe:
            try:
                probe.bind((address, port))
            except OSError as error:
                raise HarnessError(f"{address}:{port} is taken: {error.strerror}") from None
    return port


def node_addresses(base, count):
    """base, then its third byte + 1, + 2, ...: one /24 per node (IPv6: its third group, a /48 each)."""
    try:
        addr = ipaddress.ip_address(base)
    except ValueError:
        raise HarnessError(f"--base must be an IP address, got {base!r}") from None
    if addr.version == 6:
        if addr not in ipaddress.ip_network("fd00::/8"):
            raise HarnessError(f"--base {base} is not a unique-local IPv6 address (fd00::/8)")
        groups = list(addr.exploded.split(":"))
        third = int(groups[2], 16)
        if third + count - 1 > 0xffff:
            raise HarnessError(f"--base {base} leaves no room for {count} /48s")
        return [str(ipaddress.IPv6Address(":".join(groups[:2] + [f"{third + i:x}"] + groups[3:])))
                for i in range(count)]
    if not addr.is_loopback:
        raise HarnessError(f"--base {base} is not a loopback address")
    a, b, c, d = addr.packed
    if c + count - 1 > 255 or d in (0, 255):
        raise HarnessError(f"--base {base} leaves no room for {count} /24s (third byte + {count - 1} "
                           f"must stay within 255; last byte not 0 or 255)")
    return [f"{a}.{b}.{c + i}.{d}" for i in range(count)]


def introduce(nodes, who):
    """Each node in `who` pings every other node (add_dht_node): a node that answers enters the
    pinger's routing table, and the pinger enters the answerer's, as any querying node does."""
    for node in who:
        for other in nodes:
            if other is not node:
                node.session.add_dht_node((other.address, other.port))


def pure_magnet(ti):
    """Info hash and name only: nothing but the DHT can find a peer for it."""
    return f"magnet:?xt=urn:btih:{ti.info_hashes().v1}&dn={urllib.parse.quote(ti.name())}"


def cmd_start(args):
    if not 2 <= args.nodes <= 200:
        raise HarnessError("--nodes must be 2..200")
    addresses = node_addresses(args.base, args.nodes)
    ti = None
    if args.seed:
        torrent, data_dir = args.seed
        common.check_torrent_endpoints(torrent)
        try:
            ti = lt.torrent_info(torrent)
        except RuntimeError as error:
            raise HarnessError(f"{torrent}: {error}") from None
        if not ti.info_hashes().has_v1():
            raise HarnessError(f"{torrent} is v2-only; the lab announces v1 info hashes")
    started = time.monotonic()
    nodes = []
    for address in addresses:
        nodes.append(Node(address, claim_port(address, args.port)))

    def pump_all():
        for node in nodes:
            node.pump()

    # Bootstrap: everyone pings everyone, again every 2 s for nodes still short of neighbours (a
    # lost ping, or a node whose socket opened late).
    want = min(args.nodes - 1, 8)
    last_intro = [0.0]

    def tables_full():
        pump_all()
        short = [n for n in nodes if n.table_size < want]
        if not short:
            return True
        if time.monotonic() - last_intro[0] >= 2:
            for node in nodes:
                node.check_listening()
            introduce(nodes, short if last_intro[0] else nodes)
            last_intro[0] = time.monotonic()
        for node in nodes:
            node.ask_stats()
        return False
    try:
        common.wait_until(tables_full, args.timeout, f"every routing table to hold {want} nodes",
                          interval=0.05)
    except HarnessError as error:
        sizes = {n.endpoint: n.table_size for n in nodes}
        common.emit({"error": str(error), "routing_table_sizes": sizes})
        raise
    bootstrap_seconds = time.monotonic() - started
    common.log(f"{args.nodes} nodes bootstrapped in {bootstrap_seconds:.2f} s")

    seeder = infohash = magnet = announce_seconds = None
    stored_on = []
    if ti is not None:
        first = nodes[0]
        params = lt.add_torrent_params()
        params.ti = ti
        params.save_path = os.path.abspath(args.seed[1])
        params.flags = (params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | \
            lt.torrent_flags.disable_pex
        # Added only now: a torrent added before the DHT has nodes waits dht_announce_interval for
        # its first announce.
        handle = first.session.add_torrent(params)
        checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)

        def seeding():
            pump_all()
            status = handle.status()
            if status.state in checking:
                return False
            if not status.is_seeding:
                raise HarnessError(f"data in {args.seed[1]} is incomplete "
                                   f"({sum(status.pieces)}/{ti.num_pieces()} pieces verified)")
            return True
        common.wait_until(seeding, args.timeout, "the seeder to finish checking", interval=0.05)
        infohash = str(ti.info_hashes().v1)
        seeder = first.endpoint
        magnet = pure_magnet(ti)
        announce_started = time.monotonic()
        handle.force_dht_announce()
        # Proof the announce landed: another node's lookup, walking the DHT as a leecher's would,
        # returns the seeder. The probe is the node furthest along the list (any non-seeder would do).
        probe = nodes[-1]
        last_lookup = [0.0]
        last_announce = [announce_started]

        def found():
            pump_all()
            if seeder in probe.found.get(infohash, ()):
                return True
            now = time.monotonic()
            if now - last_lookup[0] >= 1:
                probe.found.pop(infohash, None)
                probe.session.dht_get_peers(ti.info_hashes().v1)
                last_lookup[0] = now
            if now - last_announce[0] >= 5:
                handle.force_dht_announce()
                last_announce[0] = now
            return False
        try:
            common.wait_until(found, args.timeout, "a get_peers lookup to return the seeder", interval=0.02)
        except HarnessError as error:
            common.emit({"error": str(error), "nodes": [n.endpoint for n in nodes], "seeder": seeder,
                         "stored_on": [n.endpoint for n in nodes if (infohash, seeder) in n.announced]})
            raise
        announce_seconds = time.monotonic() - announce_started
        pump_all()
        stored_on = [n.endpoint for n in nodes if (infohash, seeder) in n.announced]
        common.log(f"seeder {seeder} found by {probe.endpoint} after {announce_seconds:.2f} s; "
                   f"stored on {len(stored_on)} nodes")

    common.emit({"nodes": [n.endpoint for n in nodes], "node_ids": [n.node_id() for n in nodes],
                 "seeder": seeder, "infohash": infohash,
                 "magnet": magnet, "stored_on": stored_on, "bootstrap_seconds": round(bootstrap_seconds, 3),
                 "announce_seconds": None if announce_seconds is None else round(announce_seconds, 3)})

    def healthy():
        pump_all()
    common.serve_until_stdin_closes(check=healthy, interval=0.5)
    common.log("stdin closed; stopping")
    return 0


def check_magnet(params):
    """The harness talks only to loopback: refuse trackers, peers and web seeds elsewhere."""
    for url in list(params.trackers) + list(params.url_seeds):
        common.check_allowed_address(urllib.parse.urlsplit(url).hostname)
    for host, _ in params.peers:
        common.check_allowed_address(host)
    for host, _ in params.dht_nodes:
        common.check_allowed_address(host)


def cmd_fetch(args):
    started = time.monotonic()
    try:
        params = lt.parse_magnet_uri(args.magnet)
    except RuntimeError as error:
        raise HarnessError(f"not a magnet link: {error}") from None
    check_magnet(params)
    bootstrap = common.parse_hostport(args.bootstrap)
    bind = args.bind
    try:
        addr = ipaddress.ip_address(bind)
    except ValueError:
        addr = None
    local = addr is not None and (addr.version == 4 and addr.is_loopback
                                  or addr in ipaddress.ip_network("fd00::/8"))
    if not local:
        raise HarnessError(f"--bind {bind} is neither a loopback IPv4 address nor a unique-local IPv6 one")
    # connect_notification: which peers it reached, and when.
    node = Node(bind, claim_port(bind, args.port), extra_alerts=CAT.connect_notification, leecher=True)
    os.makedirs(args.out_dir, exist_ok=True)
    result = {"ok": False, "seconds": None, "metadata_seconds": None, "bootstrap_seconds": None,
              "first_peer_seconds": None, "peers": [], "bytes": 0}
    deadline = started + args.timeout

    def wait(predicate, what, interval):
        """wait_until against the overall --timeout."""
        try:
            common.wait_until(predicate, max(0.0, deadline - time.monotonic()), what, interval=interval)
        except HarnessError as error:
            if str(error).startswith("timed out"):
                raise HarnessError(f"timed out after {args.timeout:g} s waiting for {what}") from None
            raise

    last_ping = [0.0]

    def bootstrapped():
        node.pump()
        if node.table_size >= 1:
            return True
        if time.monotonic() - last_ping[0] >= 1:
            node.check_listening()
            node.session.add_dht_node(bootstrap)
            last_ping[0] = time.monotonic()
        node.ask_stats()
        return False
    try:
        wait(bootstrapped, f"{args.bootstrap} to answer and enter the routing table", 0.05)
        result["bootstrap_seconds"] = round(time.monotonic() - started, 3)
        params.save_path = os.path.abspath(args.out_dir)
        params.flags = (params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | \
            lt.torrent_flags.disable_pex
        added = time.monotonic()
        handle = node.session.add_torrent(params)
        handle.force_dht_announce()
        last_lookup = [added]

        def complete():
            node.pump()
            status = handle.status()
            now = time.monotonic()
            if status.num_peers == 0 and now - last_lookup[0] >= 3:
                # Nothing found (yet): look again rather than wait for dht_announce_interval.
                handle.force_dht_announce()
                last_lookup[0] = now
            return status.is_seeding
        try:
            wait(complete, "the download to complete", 0.01)
        finally:
            node.pump()
            if node.metadata_at is not None:
                result["metadata_seconds"] = round(node.metadata_at - added, 3)
            result["peers"] = sorted(node.connected)
            if node.connected:
                result["first_peer_seconds"] = round(min(node.connected.values()) - added, 3)
        result["seconds"] = round(time.monotonic() - added, 3)
        handle.flush_cache()
        result["bytes"] = handle.status().total_wanted_done
        result["ok"] = True
    except HarnessError as error:
        result["error"] = str(error)
        common.emit(result)
        raise
    common.emit(result)
    return 0


def main():
    parser = argparse.ArgumentParser(prog="dht_lab.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("start", help="run a DHT of N libtorrent nodes on loopback until stdin closes",
        description="run a DHT of N libtorrent nodes on loopback until stdin closes; output and exit "
                    "status: dht_lab.py --help")
    p.add_argument("--nodes", type=int, required=True, metavar="N", help="lab nodes (2..200)")
    p.add_argument("--seed", nargs=2, metavar=("TORRENT", "DATA_DIR"),
                   help="the first node seeds TORRENT from DATA_DIR and announces it in the DHT")
    p.add_argument("--base", default="127.0.1.1", metavar="ADDR",
                   help="first node's address; node i adds i to the third byte (default 127.0.1.1), "
                        "or, for an IPv6 lab, to the third group of a unique-local address")
    p.add_argument("--port", type=int, default=0, metavar="P",
                   help="TCP+UDP port of every node (default: a free port for each)")
    p.add_argument("--timeout", type=float, default=60, metavar="S",
                   help="limit for the bootstrap, and for the announce check (default 60)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("fetch", help="download a magnet link, finding peers through one lab node",
        description="download a magnet link, finding peers through one lab node; output and exit "
                    "status: dht_lab.py --help")
    p.add_argument("magnet", metavar="MAGNET")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--bootstrap", required=True, metavar="IP:PORT", help="the only node it is told of")
    p.add_argument("--bind", default="127.0.200.1", metavar="IP",
                   help="loopback address to listen on, its own /24 (default 127.0.200.1); a unique-local "
                        "IPv6 address for an IPv6 lab")
    p.add_argument("--port", type=int, default=0, metavar="P", help="TCP+UDP port (default: a free one)")
    p.add_argument("--timeout", type=float, default=60, metavar="S", help="overall limit (default 60)")
    p.set_defaults(func=cmd_fetch)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
