#!/usr/bin/python3
"""Put TLS in front of a local HTTP server (stdlib only): an HTTPS tracker for tests, made of a real
tracker (opentracker via tracker.py) and a certificate the test generated and trusts.

  tls_proxy.py --cert PEM --key PEM --to HOST:PORT [--bind ADDR]
      → {"https": "https://ADDR:P/announce"} once listening; serves until stdin closes or
        SIGTERM/SIGINT. Each TLS connection is relayed, decrypted, to HOST:PORT.

HOST and ADDR must be loopback (or harness namespace) addresses.
Exit status: 0 success, 1 failure, 2 usage error, 128+N signal N.
"""

import argparse
import os
import socket
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def pump(source, sink):
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(raw, context, upstream):
    try:
        raw.settimeout(30)
        client = context.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError) as error:
        # A client that refuses our certificate ends here; that is what some tests want.
        common.log(f"TLS handshake failed: {error}")
        raw.close()
        return
    try:
        server = socket.create_connection(upstream, timeout=30)
    except OSError as error:
        common.log(f"cannot reach {upstream}: {error}")
        client.close()
        return
    with client, server:
        back = threading.Thread(target=pump, args=(server, client), daemon=True)
        back.start()
        pump(client, server)
        back.join(30)


def main():
    parser = argparse.ArgumentParser(prog="tls_proxy.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cert", required=True, metavar="PEM")
    parser.add_argument("--key", required=True, metavar="PEM")
    parser.add_argument("--to", required=True, metavar="HOST:PORT")
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDR")
    args = parser.parse_args()
    upstream = common.parse_hostport(args.to)
    common.check_allowed_address(upstream[0])
    common.check_allowed_address(args.bind)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, 0))
    listener.listen(64)

    def accept_loop():
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=relay, args=(raw, context, upstream), daemon=True).start()
    threading.Thread(target=accept_loop, daemon=True).start()
    common.emit({"https": f"https://{args.bind}:{listener.getsockname()[1]}/announce"})
    common.serve_until_stdin_closes()
    listener.close()
    return 0


if __name__ == "__main__":
    common.run_tool(main)
