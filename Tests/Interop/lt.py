#!/usr/bin/python3
"""Drive libtorrent-rasterbar 2.0 (Debian's python3-libtorrent) for interop tests and benchmarks.

Must run under Debian's /usr/bin/python3: that is the interpreter that sees python3-libtorrent.
Each subcommand prints one JSON object on stdout; diagnostics go to stderr.

  create DATA_PATH -o FILE [--piece-size BYTES] [--v1|--v2|--hybrid] [--tracker URL]...
      → {"infohash_v1": hex|null, "infohash_v2": hex|null}      (default --v1: Transmission 3.00
        rejects the hybrid torrents libtorrent 2.0 makes by default)
  info FILE
      → {"infohash_v1", "infohash_v2", "name", "total_size", "piece_length", "piece_count",
         "files": [{"path", "size"}], "trackers": [...]}
  verify FILE DATA_DIR
      → {"pieces": n, "verified": n}; exit 0 only if every piece passes libtorrent's hash check
  seed FILE DATA_DIR [--count N] [--bind ADDR] [--port-base P] [--upload-rate BYTES/S]
       [--tracker URL]... [--seed-mode] [--pex] [--peer HOST:PORT]...
      → {"peers": ["ADDR:PORT", ...]} once every session is seeding (and connected to every --peer);
        then runs until stdin closes or SIGTERM/SIGINT.
        --pex turns peer exchange (ut_pex) on. With --pex or --peer, connections between seeds stay
        open (libtorrent closes them by default), so that seeders joined with --peer have one another
        to tell a leecher about; a --peer connection that drops is dialled again.
  download FILE... OUT_DIR --peer HOST:PORT... [--timeout S] [--bind ADDR]... [--port P] [--recheck]
           [--count N] [--tracker URL] [--pex] [--magnet | --magnet-v2]
      → {"complete": true, "seconds", "bytes", "cpu_seconds", "pieces", "failed_bytes", "sessions",
         "bytes_by_peer": {"ADDR:PORT": payload bytes received}}; exit 0 only when every piece is
        downloaded and passed its hash check.
        --count N runs N sessions at once (N leechers, for seeding benchmarks), session i saving into
        OUT_DIR/i (i = 1..N); "seconds" is until the last one completes and "bytes" their sum. Several
        FILEs run one session each (one leecher per torrent), all saving into OUT_DIR (their names must
        differ); not with --count. Several --bind addresses are shared out among the sessions in turn.
        --port fixes the listen port (default: a free one; with --count, session i listens on P+i-1),
        so other leechers can be pointed at this one. --tracker adds an announce URL (peers found there are used too; --peer is
        then optional). --progress FILE appends a line "MONOTONIC_SECONDS VERIFIED_BYTES" (all
        sessions together) about every 100 ms. bytes_by_peer names each peer by the address of its
        connection (the listen address for peers we dialled, an ephemeral port for the others), summed
        over the sessions. --pex turns peer exchange (ut_pex) on: the leechers learn peers from
        their peers too. --magnet starts from the magnet link (the info dictionary comes from the
        peers); --magnet-v2 from one naming only the v2 infohash, joining a hybrid's v2 swarm.

  fetch FILE... OUT_DIR --peer HOST:PORT [--bind ADDR] [--timeout S]
      → {"ready": true} once its session is up (start the peer after this line to time how soon it
        serves), then {"complete": true, "finished": {"NAME": MONOTONIC_SECONDS, ...}}: when each
        torrent was complete and verified, in one session saving into OUT_DIR. Exit 0 only when every
        torrent completed. It dials in plaintext. A torrent whose connection to the peer fails (not
        listening yet, or not serving that torrent yet) is removed and added again 0.1 s later:
        libtorrent itself waits a second or more before it dials a failed peer again, and gives up
        after a few tries. So the times are good to about 0.1 s on an idle machine (on a busy one,
        libtorrent's next dial can come later).

DATA_DIR / OUT_DIR is the directory that holds the torrent's top-level file or folder (its "name").
Exit status: 0 success, 1 failure (message on stderr), 2 usage error, 128+N killed by signal N.
"""

import argparse
import ipaddress
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HarnessError  # noqa: E402

try:
    import libtorrent as lt
except ImportError:
    sys.exit("lt.py: cannot import libtorrent; run it with Debian's /usr/bin/python3 "
             "(package python3-libtorrent)")

ALERTS = lt.alert.category_t.error_notification | lt.alert.category_t.status_notification | \
    lt.alert.category_t.storage_notification


def make_session(listen, upload_rate=0, outgoing=None, lsd=False, keep_seed_connections=False):
    """A session that talks only to the peers it is given: no DHT, LSD, UPnP, NAT-PMP or uTP.
    `outgoing` (an address) makes its connections come from that address. `lsd` turns Local Service
    Discovery (BEP 14) on: multicast announces on the listening interface's LAN, and peers heard there
    (libtorrent takes only those from its listening address's subnet). `keep_seed_connections` keeps
    connections between seeds open."""
    settings = {
        "listen_interfaces": listen,
        "enable_dht": False, "enable_lsd": lsd, "enable_upnp": False, "enable_natpmp": False,
        # TCP only: the same transport Transmission and aria2 use here, and cheaper on 2 cores.
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        # Local test swarms put several peers on one address.
        "allow_multiple_connections_per_ip": True,
        "alert_mask": ALERTS,
        "upload_rate_limit": upload_rate,
        "stop_tracker_timeout": 1,
        # Seed immediately to every requester; the defaults assume a wide-area swarm.
        "unchoke_slots_limit": -1,
        "connections_limit": 500,
        "user_agent": "potluck-interop/libtorrent-" + lt.__version__,
    }
    if outgoing:
        settings["outgoing_interfaces"] = outgoing
    if keep_seed_connections:
        settings["close_redundant_connections"] = False
    session = lt.session(settings)
    if upload_rate:
        # Loopback peers fall in libtorrent's "local" class, which ignores rate limits; put every
        # address in the global class so the limit applies to them too.
        classes = lt.ip_filter()
        classes.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        session.set_peer_class_filter(classes)
    return session


def load(path):
    try:
        return lt.torrent_info(path)
    except RuntimeError as error:
        raise HarnessError(f"{path}: {error}") from None


def hashes(ti):
    ih = ti.info_hashes()
    return {"infohash_v1": str(ih.v1) if ih.has_v1() else None,
            "infohash_v2": str(ih.v2) if ih.has_v2() else None}


def drain_errors(session):
    """Turn libtorrent's error alerts into a failure instead of a silent stall."""
    for alert in session.pop_alerts():
        if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert, lt.listen_failed_alert)):
            raise HarnessError(alert.message())
        if isinstance(alert, lt.hash_failed_alert):
            common.log(alert.message())


def cmd_create(args):
    path = os.path.abspath(args.data_path)
    if not os.path.exists(path):
        raise HarnessError(f"{path} does not exist")
    fs = lt.file_storage()
    lt.add_files(fs, path)
    if fs.num_files() == 0:
        raise HarnessError(f"{path} holds no files")
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[args.format]
    ct = lt.create_torrent(fs, args.piece_size, flags=flags)
    for tier, url in enumerate(args.tracker):
        ct.add_tracker(url, tier)
    ct.set_creator("potluck interop harness")
    lt.set_piece_hashes(ct, os.path.dirname(path))
    with open(args.output, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    common.emit(hashes(load(args.output)))


def cmd_info(args):
    ti = load(args.file)
    fs = ti.files()
    files = [{"path": fs.file_path(i), "size": fs.file_size(i)}
             for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file]
    common.emit({**hashes(ti), "name": ti.name(), "total_size": sum(f["size"] for f in files),
                 "piece_length": ti.piece_length(), "piece_count": ti.num_pieces(), "files": files,
                 "trackers": [t.url for t in ti.trackers()]})


def add(session, ti, save_path, flags=0, pex=False):
    params = lt.add_torrent_params()
    params.ti = ti
    params.save_path = os.path.abspath(save_path)
    # No peer exchange unless asked: a session meets only the peers it is given (or a tracker names),
    # so a seeding benchmark's leechers do not trade among themselves.
    params.flags = (params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | flags | \
        (0 if pex else lt.torrent_flags.disable_pex)
    return session.add_torrent(params)


def add_magnet(session, ti, save_path, v2_only=False):
    """Adds the torrent by its magnet link only: the info dictionary must come from the peers (BEP 9).
    With v2_only the link names only the v2 infohash (urn:btmh): a hybrid is then joined through its
    v2 swarm, with handshakes that carry the truncated v2 infohash (BEP 52)."""
    uri = f"magnet:?xt=urn:btmh:1220{ti.info_hashes().v2}" if v2_only else lt.make_magnet_uri(ti)
    params = lt.parse_magnet_uri(uri)
    params.save_path = os.path.abspath(save_path)
    params.flags = (params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | \
        lt.torrent_flags.disable_pex
    return session.add_torrent(params)


def cmd_verify(args):
    ti = load(args.file)
    session = make_session("127.0.0.1:0")
    # stop_when_ready: check the files, then pause before any tracker or peer is contacted.
    handle = add(session, ti, args.data_dir, lt.torrent_flags.stop_when_ready)
    # Nothing to announce or fetch: verify works on any torrent without contacting what it names.
    handle.replace_trackers([])
    for url in handle.url_seeds():
        handle.remove_url_seed(url)
    checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)

    def checked():
        drain_errors(session)
        status = handle.status()
        return status.state not in checking and bool(status.flags & lt.torrent_flags.paused)
    common.wait_until(checked, args.timeout, "libtorrent's hash check")
    status = handle.status()
    verified = sum(1 for have in status.pieces if have)
    common.emit({"pieces": ti.num_pieces(), "verified": verified})
    return 0 if verified == ti.num_pieces() else 1


def cmd_seed(args):
    torrents = [load(path) for path in args.file]
    for path in args.file:
        common.check_torrent_endpoints(path)
    common.check_allowed_address(args.bind)
    peers = [common.parse_hostport(p) for p in args.peer]
    for host, _ in peers:
        common.check_allowed_address(host)
    sessions = []  # (session, handle) for every torrent of every session
    made = []
    for i in range(args.count):
        port = args.port_base + i if args.port_base else common.free_tcp_udp_port(args.bind)
        session = make_session(f"{args.bind}:{port}", args.upload_rate, lsd=args.lsd,
                               keep_seed_connections=args.pex or bool(peers))
        made.append(session)
        for ti in torrents:
            handle = add(session, ti, args.data_dir, lt.torrent_flags.seed_mode if args.seed_mode else 0,
                         pex=args.pex)
            for tier, url in enumerate(args.tracker):
                handle.add_tracker({"url": url, "tier": tier})
            sessions.append((session, handle))

    def all_seeding():
        for session, handle in sessions:
            drain_errors(session)
            status = handle.status()
            if status.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data):
                return False
            if not status.is_seeding:
                raise HarnessError(f"data in {args.data_dir} for {status.name} is incomplete "
                                   f"({sum(status.pieces)}/{len(status.pieces)} pieces verified)")
        return True
    common.wait_until(all_seeding, args.timeout, "the seeders to finish checking")

    def connected_to_peers():
        for session, handle in sessions:
            drain_errors(session)
            # Past the handshake: num_peers counts connections still being made, which may fail.
            pending = lt.peer_info.connecting | lt.peer_info.handshake
            if sum(1 for info in handle.get_peer_info() if not info.flags & pending) < len(peers):
                for peer in peers:
                    handle.connect_peer(peer)
                return False
        return True
    common.wait_until(connected_to_peers, args.timeout, "the seeders to connect to their --peer", interval=0.5)
    listening = []
    for session in made:
        # The port actually bound (a fixed --port-base may have been taken: then this fails loudly).
        if not session.is_listening():
            raise HarnessError("a seeding session is not listening")
        listening.append(f"{args.bind}:{session.listen_port()}")
    common.emit({"peers": listening})

    def healthy():
        for session, handle in sessions:
            drain_errors(session)
            # A --peer connection that dropped is dialled again: the tests that name a peer rely on it
            # staying connected (to be named in that peer's PEX messages, for one).
            connected = {info.ip for info in handle.get_peer_info()}
            for peer in peers:
                if peer not in connected:
                    common.log(f"{peer[0]}:{peer[1]} is not connected; dialling it again")
                    handle.connect_peer(peer)
    common.serve_until_stdin_closes(check=healthy)
    common.log("stdin closed; stopping")


def local_addresses_for(peers):
    """Listen where the peers are routed from, never on a wildcard address."""
    return sorted({common.source_address_for(host) for host, _ in peers})


def cmd_download(args):
    infos = [load(path) for path in args.file]
    for path in args.file:
        common.check_torrent_endpoints(path)
    if not args.peer and not args.tracker and not args.lsd:
        raise HarnessError("give --peer HOST:PORT (or --tracker URL, or --lsd with --bind)")
    if args.lsd and not args.peer and not args.tracker and not args.bind:
        raise HarnessError("--lsd alone needs --bind ADDR: the LAN to announce on")
    if args.count < 1:
        raise HarnessError("--count must be at least 1")
    if len(infos) > 1 and args.count > 1:
        raise HarnessError("several torrents run one session each: --count goes with one torrent only")
    if len({ti.name() for ti in infos}) < len(infos):
        raise HarnessError("the torrents share a name, and would save into the same place")
    peers = [common.parse_hostport(p) for p in args.peer]
    for host, _ in peers:
        common.check_allowed_address(host)
    for url in args.tracker:
        common.check_allowed_address(common.urllib.parse.urlsplit(url).hostname)
    for address in args.bind:
        common.check_allowed_address(address)
    if args.bind:
        binds = args.bind
    elif peers:
        binds = [",".join(f"{address}:{{port}}" for address in local_addresses_for(peers))]
    else:
        binds = [common.source_address_for(common.urllib.parse.urlsplit(args.tracker[0]).hostname)]
    start = time.monotonic()
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    leechers = []
    for i in range(max(args.count, len(infos))):
        port = args.port + i if args.port else 0
        bind = binds[i % len(binds)].replace("{port}", str(port))
        # An explicit --bind is also the source of its connections (Transmission tells peers apart
        # by address alone).
        # Connections to seeds stay open once complete, so that the last sample of bytes_by_peer still
        # sees them (a fast peer can deliver the rest and be dropped between two samples).
        try:
            address = ipaddress.ip_address(bind)
        except ValueError:
            address = None  # already host:port pairs (the peers' local addresses)
        if address is None:
            listen, outgoing = bind, None
        else:
            listen = f"[{bind}]:{port}" if address.version == 6 else f"{bind}:{port}"
            outgoing = bind
        session = make_session(listen, outgoing=outgoing, lsd=args.lsd, keep_seed_connections=True)
        out_dir = args.out_dir if args.count == 1 else os.path.join(args.out_dir, str(i + 1))
        os.makedirs(out_dir, exist_ok=True)
        info = infos[min(i, len(infos) - 1)]
        if args.magnet or args.magnet_v2:
            handle = add_magnet(session, info, out_dir, v2_only=args.magnet_v2)
        else:
            handle = add(session, info, out_dir, pex=args.pex)
        for tier, url in enumerate(args.tracker):
            handle.add_tracker({"url": url, "tier": tier})
        for peer in peers:
            handle.connect_peer(peer)
        leechers.append((session, handle, [time.monotonic(), -1]))
    by_peer = [{} for _ in leechers]

    def record_peers(index, handle):
        # Totals are per connection; a connection that ended keeps its last sample.
        for info in handle.get_peer_info():
            key = f"{info.ip[0]}:{info.ip[1]}"
            by_peer[index][key] = max(by_peer[index].get(key, 0), info.total_download)

    progress = open(args.progress, "a", buffering=1) if args.progress else None
    last_written = [0.0]

    def done():
        complete = True
        verified = 0
        for index, (session, handle, last_progress) in enumerate(leechers):
            drain_errors(session)
            record_peers(index, handle)
            status = handle.status()
            if status.num_pieces != last_progress[1]:
                last_progress[:] = [time.monotonic(), status.num_pieces]
            elif time.monotonic() - last_progress[0] > 5:
                # Peers drop idle connections; ask again rather than wait on a reconnect timer.
                for peer in peers:
                    handle.connect_peer(peer)
                last_progress[0] = time.monotonic()
            complete = complete and status.is_seeding
            verified += status.total_wanted_done
        now = time.monotonic()
        if progress and (complete or now - last_written[0] >= 0.1):
            last_written[0] = now
            progress.write(f"{now:.3f} {verified}\n")
        return complete

    try:
        common.wait_until(done, args.timeout, "the download to complete", interval=0.05)
    except HarnessError:
        statuses = [handle.status() for _, handle, _ in leechers]
        common.emit({"complete": False, "pieces": sum(s.num_pieces for s in statuses),
                     "piece_count": sum(h.torrent_file().num_pieces() if h.torrent_file() else 0 for _, h, _ in leechers),
                     "peers_connected": sum(s.num_peers for s in statuses)})
        raise
    seconds = time.monotonic() - start
    for index, (_, handle, _) in enumerate(leechers):
        record_peers(index, handle)
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    statuses = [handle.status() for _, handle, _ in leechers]
    summed_by_peer = {}
    for counts in by_peer:
        for key, count in counts.items():
            summed_by_peer[key] = summed_by_peer.get(key, 0) + count
    for _, handle, _ in leechers:
        # The payload is on disk (flushed to the page cache) before we report it complete.
        handle.flush_cache()
    if args.recheck:
        for _, handle, _ in leechers:
            handle.force_recheck()
        time.sleep(0.2)
        checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        common.wait_until(lambda: all(h.status().state not in checking for _, h, _ in leechers),
                          args.timeout, "the re-check")
        if not all(h.status().is_seeding for _, h, _ in leechers):
            raise HarnessError("downloaded data failed the re-check")
    common.emit({
        "complete": True, "seconds": round(seconds, 3),
        "bytes": sum(s.total_payload_download for s in statuses),
        "cpu_seconds": round(cpu_end.ru_utime + cpu_end.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime, 3),
        "pieces": sum(ti.num_pieces() for ti in infos), "failed_bytes": sum(s.total_failed_bytes for s in statuses),
        "sessions": len(leechers), "bytes_by_peer": summed_by_peer})


def cmd_fetch(args):
    infos = [load(path) for path in args.file]
    for path in args.file:
        common.check_torrent_endpoints(path)
    peer = common.parse_hostport(args.peer)
    if args.bind:
        common.check_allowed_address(args.bind)
    session = make_session(f"{args.bind or common.source_address_for(peer[0])}:0", outgoing=args.bind)
    # Dial at once (libtorrent's tick is 500 ms) and at any time again, in plaintext: Transmission 3.00
    # closes libtorrent's encrypted opening, and the plaintext retry comes a second later.
    session.apply_settings({"tick_interval": 50, "min_reconnect_time": 0,
                            "out_enc_policy": lt.enc_policy.disabled,
                            "alert_mask": ALERTS | lt.alert.category_t.connect_notification})
    os.makedirs(args.out_dir, exist_ok=True)
    # Per torrent not yet complete: its handle, when it was added, and when to add it again.
    pending = {}

    def start(index):
        handle = add(session, infos[index], args.out_dir)
        handle.connect_peer(peer)
        pending[index] = [handle, time.monotonic(), None]

    for index in range(len(infos)):
        start(index)
    common.emit({"ready": True})
    finished = {}

    def done():
        dropped = []
        for alert in session.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert, lt.listen_failed_alert)):
                raise HarnessError(alert.message())
            if isinstance(alert, lt.peer_disconnected_alert):
                dropped.append(alert.handle)
        now = time.monotonic()
        for index, entry in list(pending.items()):
            handle, added, again = entry
            status = handle.status()
            if status.is_seeding:
                finished[infos[index].name()] = round(now, 3)
                del pending[index]
            elif again is None and (handle in dropped or (status.num_peers == 0 and now - added > 5)):
                entry[2] = now + 0.1
            elif again is not None and now >= again:
                session.remove_torrent(handle)
                start(index)
        return not pending

    try:
        common.wait_until(done, args.timeout, "the torrents to complete", interval=0.02)
    except HarnessError:
        common.emit({"complete": False, "finished": finished})
        raise
    common.emit({"complete": True, "finished": finished})


def main():
    parser = argparse.ArgumentParser(prog="lt.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("create", help="make a .torrent (v1 by default)",
        description="make a .torrent (v1 by default); output and exit status: lt.py --help")
    p.add_argument("data_path", metavar="DATA_PATH", help="file or directory to describe")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--piece-size", type=int, default=0, metavar="BYTES",
                   help="power of two, at least 16384 (default: libtorrent chooses)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--v1", dest="format", action="store_const", const="v1", help="v1 only (default)")
    group.add_argument("--v2", dest="format", action="store_const", const="v2", help="v2 only")
    group.add_argument("--hybrid", dest="format", action="store_const", const="hybrid", help="v1 + v2")
    p.set_defaults(format="v1")
    p.add_argument("--tracker", action="append", default=[], metavar="URL", help="announce URL (repeatable)")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("info", help="describe a .torrent",
        description="describe a .torrent; output and exit status: lt.py --help")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("verify", help="hash-check data against a .torrent",
        description="hash-check data against a .torrent; output and exit status: lt.py --help")
    p.add_argument("file", metavar="FILE")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--timeout", type=float, default=600, metavar="S")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("seed", help="seed from N libtorrent sessions until stdin closes",
        description="seed from N libtorrent sessions until stdin closes; output and exit status: lt.py --help")
    p.add_argument("file", metavar="FILE", nargs="+", help="torrents, each seeded by every session")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--count", type=int, default=1, metavar="N", help="sessions, each a peer (default 1)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on: loopback or a harness namespace address")
    p.add_argument("--port-base", type=int, default=0, metavar="P",
                   help="listen on P, P+1, ... (default: free ports)")
    p.add_argument("--upload-rate", type=int, default=0, metavar="BYTES/S",
                   help="per-session upload limit, applied to loopback peers too (default: none)")
    p.add_argument("--tracker", action="append", default=[], metavar="URL",
                   help="also announce to this tracker (repeatable)")
    p.add_argument("--lsd", action="store_true",
                   help="Local Service Discovery on (BEP 14): announce on --bind's LAN, take peers heard there")
    p.add_argument("--seed-mode", action="store_true",
                   help="trust the data instead of hash-checking it first (large payloads)")
    p.add_argument("--timeout", type=float, default=600, metavar="S", help="limit for the initial check")
    p.add_argument("--pex", action="store_true",
                   help="peer exchange on, and connections between seeds kept (default: off)")
    p.add_argument("--peer", action="append", default=[], metavar="HOST:PORT",
                   help="dial this peer and be ready only once connected (repeatable)")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("download", help="download from the given peers",
        description="download from the given peers; output and exit status: lt.py --help")
    p.add_argument("file", metavar="FILE", nargs="+", help="one leecher session per torrent")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--peer", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--timeout", type=float, default=300, metavar="S")
    p.add_argument("--bind", action="append", default=[], metavar="ADDR",
                   help="listen address (default: the local address routed to the peers); repeatable, "
                        "shared out among --count sessions")
    p.add_argument("--port", type=int, default=0, metavar="P",
                   help="listen port (default: a free one; session i of --count gets P+i-1)")
    p.add_argument("--recheck", action="store_true", help="hash-check everything again at the end")
    p.add_argument("--lsd", action="store_true",
                   help="Local Service Discovery on (BEP 14): find peers on --bind's LAN, with or without --peer")
    p.add_argument("--magnet", action="store_true",
                   help="start from the torrent's magnet link: fetch the info dictionary from the peers")
    p.add_argument("--magnet-v2", action="store_true",
                   help="as --magnet, with a link naming only the v2 infohash (a hybrid's v2 swarm)")
    p.add_argument("--count", type=int, default=1, metavar="N",
                   help="N leecher sessions at once, session i in OUT_DIR/i (default 1: OUT_DIR itself)")
    p.add_argument("--tracker", action="append", default=[], metavar="URL",
                   help="also announce to this tracker and use the peers it returns (repeatable)")
    p.add_argument("--progress", metavar="FILE",
                   help="append 'MONOTONIC_SECONDS VERIFIED_BYTES' lines about every 100 ms")
    p.add_argument("--pex", action="store_true", help="peer exchange on: learn peers from peers (default: off)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("fetch", help="time how soon a starting peer serves the torrents",
        description="time how soon a starting peer serves the torrents; output and exit status: lt.py --help")
    p.add_argument("file", metavar="FILE", nargs="+")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--peer", required=True, metavar="HOST:PORT")
    p.add_argument("--bind", metavar="ADDR",
                   help="listen on and connect from this address (default: the one routed to the peer)")
    p.add_argument("--timeout", type=float, default=300, metavar="S")
    p.set_defaults(func=cmd_fetch)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
