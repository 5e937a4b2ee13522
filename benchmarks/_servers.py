"""Benchmark servers (echo in three styles, HTTP on httptools, aiohttp) and their control channel.

Invariant: a server prints exactly one ``READY <port>`` line once it accepts connections on
127.0.0.1, then answers each ``mark`` line on stdin with one JSON line of its own getrusage; the
control thread blocks in read() between marks, so it adds no CPU to the measured window.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sys
import threading
import time
from typing import Any

HOST = "127.0.0.1"
READ_SIZE = 65536  # below glibc's mmap threshold: see ARCHITECTURE.md section 5
HTTP_BODY = b"Hello, World!"
HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(HTTP_BODY)).encode()
    + b"\r\n\r\n"
    + HTTP_BODY
)
HTTP_CLOSE_RESPONSE = HTTP_RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)

SERVER_KINDS: tuple[str, ...] = ("echo-protocol", "echo-streams", "echo-sock", "http", "aiohttp")


def rusage_snapshot() -> dict[str, Any]:
    """This process's CPU time (all threads), peak and current RSS, and the monotonic clock."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    return {
        "utime": ru.ru_utime,
        "stime": ru.ru_stime,
        "maxrss_kb": ru.ru_maxrss,
        "rss_kb": rss_pages * (os.sysconf("SC_PAGESIZE") // 1024),
        "t": time.monotonic(),
    }


def _control_thread() -> None:
    # Reads the raw fd, not sys.stdin, so nothing buffers a line the parent is waiting on.
    buf = b""
    while True:
        chunk = os.read(0, 256)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.strip()
            if cmd == b"mark":
                sys.stdout.write(json.dumps(rusage_snapshot()) + "\n")
                sys.stdout.flush()
            elif cmd == b"quit":
                sys.stdout.flush()
                os._exit(0)
    # The parent went away: leave at once, whatever the loop is doing (some loops ignore stop()
    # from another thread while blocked in their poller).
    os._exit(0)


def _nodelay(sock: Any) -> None:
    # Transports of asyncio and uvloop already set TCP_NODELAY; set it everywhere so no loop gets
    # Nagle delays on split 100 KiB echoes. Some loops hand out no real socket object: fine.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except Exception:
        pass


class EchoProtocol(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "write")
        self.transport = transport  # type: ignore[assignment]
        _nodelay(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    _nodelay(writer.get_extra_info("socket"))
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _echo_sock_conn(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    try:
        while True:
            data = await loop.sock_recv(conn, READ_SIZE)
            if not data:
                break
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def _echo_sock_accept(loop: asyncio.AbstractEventLoop, lsock: socket.socket) -> None:
    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn, _ = await loop.sock_accept(lsock)
        conn.setblocking(False)
        _nodelay(conn)
        t = loop.create_task(_echo_sock_conn(loop, conn))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


class HttpProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1 hello world; httptools does the parsing, we only answer."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        import httptools  # type: ignore[import-not-found,unused-ignore]

        self._parser = httptools.HttpRequestParser(self)
        self._error = httptools.HttpParserError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _nodelay(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._error:
            self.transport.close()

    def on_message_complete(self) -> None:
        if self._parser.should_keep_alive():
            self.transport.write(HTTP_RESPONSE)
        else:
            self.transport.write(HTTP_CLOSE_RESPONSE)
            self.transport.close()


async def _start(kind: str, loop: asyncio.AbstractEventLoop) -> tuple[int, Any]:
    """Start a server of ``kind``; return its port and an object to keep alive."""
    if kind == "echo-protocol":
        srv = await loop.create_server(EchoProtocol, HOST, 0, backlog=1024)
        return srv.sockets[0].getsockname()[1], srv
    if kind == "echo-streams":
        srv = await asyncio.start_server(_echo_stream, HOST, 0, backlog=1024)
        return srv.sockets[0].getsockname()[1], srv
    if kind == "echo-sock":
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((HOST, 0))
        lsock.listen(1024)
        lsock.setblocking(False)
        task = loop.create_task(_echo_sock_accept(loop, lsock))
        return lsock.getsockname()[1], (lsock, task)
    if kind == "http":
        srv = await loop.create_server(HttpProtocol, HOST, 0, backlog=1024)
        return srv.sockets[0].getsockname()[1], srv
    if kind == "aiohttp":
        from aiohttp import web  # type: ignore[import-not-found,unused-ignore]

        async def hello(request: Any) -> Any:
            return web.Response(text="Hello, World!")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=1024)
        await site.start()
        return runner.addresses[0][1], runner
    raise ValueError(f"unknown server kind {kind!r}; known: {', '.join(SERVER_KINDS)}")


def serve(kind: str, loop: asyncio.AbstractEventLoop, info: str = "{}") -> None:
    """Run a server of ``kind`` on ``loop`` until the parent says quit or goes away."""
    port, keep = loop.run_until_complete(_start(kind, loop))
    threading.Thread(target=_control_thread, daemon=True).start()
    sys.stdout.write(f"READY {port} {info}\n")
    sys.stdout.flush()
    try:
        loop.run_forever()
    finally:
        del keep
