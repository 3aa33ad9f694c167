#!/usr/bin/python3
"""Network namespaces for interop tests (root only).

Transmission 3.00 ignores peers at 127.x and keeps one peer per IP, so tests that need it, or need
several distinct peer addresses, put clients in namespaces. Namespace plk-N holds veth plkN-n with
10.77.N.2/24; its pair plkN-r stays in the root namespace with 10.77.N.1/24 (and, if asked, extra
addresses 10.77.N.101, .102, ... for several root-side peers). Nothing is routed beyond the pair.

  create [--root-addresses K]
      → {"netns": "plk-N", "index": N, "ns_address": "10.77.N.2", "root_address": "10.77.N.1",
         "root_addresses": [...], "root_veth": "plkN-r", "ns_veth": "plkN-n"}; the namespace stays
        until `delete` (run a command inside with `ip netns exec plk-N CMD`)
  delete NAME...     kills what still runs inside, deletes the namespace and its veth pair
                     → {"deleted": [...]}
  list               → {"netns": [harness namespaces], "veths": [harness veths in the root namespace]}
  cleanup [--run ID] after a killed run: deletes every plk-* namespace and plkN-[rn] veth, kills the
                     processes inside them and any process started from a potluck-interop-*
                     temporary directory (e.g. an orphaned opentracker), removes those directories
                     → {"deleted_netns": [...], "deleted_veths": [...], "killed": [pids], "removed": [dirs]}
                     Without --run it does not spare other harness runs in progress. With --run ID
                     it touches only what tools started with POTLUCK_INTEROP_RUN=ID in their
                     environment created (namespaces, processes carrying that variable, temporary
                     directories), so concurrent runs are safe.

Exit status: 0 success, 1 failure, 2 usage error.
"""

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def harness_namespaces(run=None):
    """Harness namespaces; with run, only those that run created."""
    names = [n for n in common.netns_names() if n.startswith(common.NS_PREFIX)]
    return [n for n in names if run is None or common.netns_owner(n) == run]


def harness_veths(run=None):
    names = []
    for line in common.ip("-o", "link").stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        m = common.VETH_RE.match(name)
        if m and (run is None or common.netns_owner(f"{common.NS_PREFIX}{m.group(1)}") == run):
            names.append(name)
    return names


def ancestors():
    """This process and its ancestors: they may carry the run identifier, and must survive."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return pids


def stray_processes(run=None):
    """Processes started by harness tools, never this one: without run, those whose command line
    names a harness temporary directory; with run, those carrying that run's identifier."""
    marker = os.path.join(tempfile.gettempdir(), common.TMP_PREFIX).encode()
    tag = f"{common.RUN_ENV}={run}".encode()
    pids = []
    spared = ancestors()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            if run is None:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found = marker in f.read()
            else:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    found = tag in f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if found and not zombie:
            pids.append(int(entry))
    return pids


def cmd_create(args):
    common.emit(common.netns_create(args.root_addresses))
    return 0


def cmd_delete(args):
    for name in args.names:
        if not name.startswith(common.NS_PREFIX):
            raise common.HarnessError(f"{name} is not a harness namespace ({common.NS_PREFIX}N)")
    for name in args.names:
        common.netns_delete(name)
    common.emit({"deleted": args.names})
    return 0


def cmd_list(_args):
    common.emit({"netns": harness_namespaces(), "veths": harness_veths()})
    return 0


def cmd_cleanup(args):
    run = args.run
    if run is not None and not common.re.fullmatch(r"[A-Za-z0-9]+", run):
        raise common.HarnessError("--run takes letters and digits only")
    killed = []
    namespaces = harness_namespaces(run)
    for name in namespaces:
        killed += [int(p) for p in common.ip("netns", "pids", name, check=False).stdout.split()]
        common.netns_delete(name)
    for pid in stray_processes(run):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    veths = harness_veths(run)
    for name in veths:
        common.ip("link", "del", name, check=False)
    prefix = common.run_tmp_prefix(run) if run else common.TMP_PREFIX
    removed = glob.glob(os.path.join(tempfile.gettempdir(), glob.escape(prefix) + "*"))
    for path in removed:
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False, timeout=60)
    existing = set(common.netns_names())
    for owner_file in glob.glob(os.path.join(common.OWNER_DIR, common.NS_PREFIX + "*")):
        if os.path.basename(owner_file) not in existing:
            os.unlink(owner_file)  # its namespace was deleted by other means
    left = harness_namespaces(run) + harness_veths(run)
    common.emit({"deleted_netns": namespaces, "deleted_veths": veths, "killed": killed, "removed": removed})
    if left:
        raise common.HarnessError(f"could not delete: {' '.join(left)}")
    return 0


def main():
    parser = argparse.ArgumentParser(prog="netns.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create", help="a namespace with a veth pair to the root namespace",
        description="a namespace with a veth pair to the root namespace; output and exit status: netns.py --help")
    p.add_argument("--root-addresses", type=int, default=0, metavar="K",
                   help="extra root-side addresses 10.77.N.101.. (0..100)")
    p.set_defaults(func=cmd_create)
    p = sub.add_parser("delete", help="delete harness namespaces",
        description="delete harness namespaces; output and exit status: netns.py --help")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_delete)
    sub.add_parser("list", help="harness namespaces and veths",
        description="harness namespaces and veths; output and exit status: netns.py --help").set_defaults(func=cmd_list)
    p = sub.add_parser("cleanup", help="remove everything a killed run left behind",
        description="remove everything a killed run left behind; output and exit status: netns.py --help")
    p.add_argument("--run", metavar="ID", help=f"only what the run with {common.RUN_ENV}=ID created")
    p.set_defaults(func=cmd_cleanup)
    args = parser.parse_args()
    if getattr(args, "root_addresses", 0) not in range(0, 101):
        parser.error("--root-addresses must be 0..100")
    return args.func(args)


if __name__ == "__main__":
    common.run_tool(main)
