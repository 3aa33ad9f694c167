#!/usr/bin/python3
"""A real web seed for tests: nginx serving a folder on a free loopback port, with its own generated
configuration (not the system service).

  nginx_webseed.py ROOT [--bind ADDR] [--tls CERT KEY]
      → {"url": "http://ADDR:P/", "access_log": PATH} once nginx answers; serves ROOT until stdin closes
        or SIGTERM/SIGINT. The access log has a line "CONNECTION REQUESTS STATUS" per request (its
        connection's serial number and how many requests that connection has carried).
        With --tls (PEM files) it serves https at "url", and "redirect" is an http URL whose every
        request is redirected (301) to the same path over https.

Exit status: 0 success, 1 failure (nginx missing or not starting), 2 usage error, 128+N signal N.
"""

import argparse
import contextlib
import os
import shutil
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CONFIG = """daemon off;
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format seed '$connection $connection_requests $status';
    access_log {state}/access.log seed;
    client_body_temp_path {state}/body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    sendfile on;
    keepalive_requests 10000;
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;
    server {{
        listen {bind}:{port}{tls};
        root {root};
        {certificates}
    }}
    {redirect}
}}
"""

CERTIFICATES = "ssl_certificate {cert}; ssl_certificate_key {key};"

REDIRECT = """server {{
        listen {bind}:{redirect_port};
        return 301 https://$host:{port}$request_uri;
    }}"""


def nginx_binary():
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise common.HarnessError("nginx is not installed (apt-get install nginx-light)")


def main():
    parser = argparse.ArgumentParser(prog="nginx_webseed.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="the folder whose files are served")
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="loopback address to listen on")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve https with these PEM files")
    args = parser.parse_args()
    common.check_allowed_address(args.bind)
    binary = nginx_binary()
    with contextlib.ExitStack() as stack:
        state = common.make_tempdir(stack, "nginx")
        port = common.free_port(args.bind)
        redirect_port = None
        while args.tls and redirect_port in (None, port):
            redirect_port = common.free_port(args.bind)
        config = os.path.join(state, "nginx.conf")
        tls = {"tls": "", "certificates": "", "redirect": ""}
        if args.tls:
            cert, key = (os.path.realpath(path) for path in args.tls)
            tls = {"tls": " ssl", "certificates": CERTIFICATES.format(cert=cert, key=key),
                   "redirect": REDIRECT.format(bind=args.bind, port=port, redirect_port=redirect_port)}
        with open(config, "w") as file:
            file.write(CONFIG.format(state=state, bind=args.bind, port=port, root=os.path.realpath(args.root), **tls))
        proc = common.spawn([binary, "-c", config, "-p", state, "-e", os.path.join(state, "error.log")],
                            stack, name="nginx")

        def answers():
            with contextlib.suppress(OSError), socket.create_connection((args.bind, port), timeout=1):
                return True
            return False

        common.wait_until(answers, 10, "nginx to listen", procs=[proc])
        ready = {"url": f"{'https' if args.tls else 'http'}://{args.bind}:{port}/",
                 "access_log": os.path.join(state, "access.log")}
        if args.tls:
            ready["redirect"] = f"http://{args.bind}:{redirect_port}/"
        common.emit(ready)
        common.serve_until_stdin_closes(procs=[proc])
    return 0


if __name__ == "__main__":
    common.run_tool(main)
