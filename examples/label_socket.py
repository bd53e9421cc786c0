#!/usr/bin/env python3
"""Label a socket from Python with nothing but the standard library.

The daemon reads the socket's identity from the fd itself, so the request and the fd travel in
one sendmsg (socket.send_fds). Run it while sockstatsd is running:

    python3 examples/label_socket.py

It makes a loopback TCP connection to itself, labels the client end `python-upload`, sends
50,000 bytes and prints what sockstats counted for the label.
"""
import json
import os
import socket
import threading

DAEMON = os.environ.get("SOCKSTATS_SOCKET", "/run/sockstats/sockstats.sock")


def request(daemon, message, fds=()):
    """Sends one request line (with fds, if any) and returns the decoded reply."""
    line = (json.dumps(message) + "\n").encode()
    if fds:
        socket.send_fds(daemon, [line], list(fds))
    else:
        daemon.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = daemon.recv(65536)
        if not chunk:
            raise ConnectionError("sockstatsd closed the connection")
        reply += chunk
    reply = json.loads(reply)
    if not reply["ok"]:
        raise RuntimeError(f"sockstatsd refused ({reply.get('code')}): {reply['error']}")
    return reply


def main():
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    daemon.connect(DAEMON)

    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def serve():
        conn, _ = listener.accept()
        total = 0
        while chunk := conn.recv(65536):
            total += len(chunk)
        received.append(total)
        conn.close()

    server = threading.Thread(target=serve)
    server.start()
    upload = socket.create_connection(listener.getsockname())
    labeled = request(daemon, {"op": "label", "label": "python-upload"}, [upload.fileno()])
    print(f"labeled socket {labeled['sockets'][0]['cookie']} as {labeled['label']!r}")
    upload.sendall(b"p" * 50_000)
    upload.close()
    server.join()

    stats = request(daemon, {"op": "get"})["stats"]["python-upload"]
    print(f"python-upload: tx_bytes={stats['tx_bytes']} rx_bytes={stats['rx_bytes']} "
          f"(the server read {received[0]})")


if __name__ == "__main__":
    main()
