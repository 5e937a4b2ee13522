"""Fixed-count keep-alive HTTP/1.1 load generator, for instruction counts of the HTTP servers.

    python -m benchmarks.http_client HOST PORT CONNS REQUESTS

Invariant: every connection has exactly one GET in flight; a request counts once its whole
response (headers and Content-Length bytes of body) is back, and the run stops after exactly
REQUESTS responses, so a server's work depends on the request count only, never on time (wrk
runs for a duration, which makes callgrind totals incomparable). It runs in its own process, so
its own cost never shows in the server's counts; speed does not matter here.
"""

from __future__ import annotations

import selectors
import socket
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _response_length(buf: bytes) -> int:
    """Length of the first complete response in buf, or 0 if it is not all there yet."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return 0
    length = None
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this client")
    if length is None:
        raise RuntimeError("response without Content-Length")
    total = end + 4 + length
    return total if len(buf) >= total else 0


def run(host: str, port: int, conns: int, requests: int) -> int:
    """Send `requests` GETs over `conns` keep-alive connections; return the number answered."""
    sel = selectors.DefaultSelector()
    bufs: dict[socket.socket, bytes] = {}
    sent = 0
    for _ in range(min(conns, requests)):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
        s.sendall(REQUEST)
        sent += 1
    done = 0
    while done < requests:
        events = sel.select(timeout=60)
        if not events:
            raise RuntimeError(f"no response for 60 s after {done} requests")
        for key, _ in events:
            s = key.fileobj
            assert isinstance(s, socket.socket)
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"server closed a connection after {done} requests")
            buf = bufs[s] + chunk
            while (n := _response_length(buf)):
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected response {buf[:40]!r}")
                buf = buf[n:]
                done += 1
                if sent < requests:
                    s.sendall(REQUEST)
                    sent += 1
            bufs[s] = buf
    for s in bufs:
        sel.unregister(s)
        s.close()
    sel.close()
    return done


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, conns, requests = args[0], int(args[1]), int(args[2]), int(args[3])
    print(f'{{"requests": {run(host, port, conns, requests)}}}')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
