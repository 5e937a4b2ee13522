"""Low-level sock_* coroutines, sendfile and DNS: same behaviour on asyncio and tideloop."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

import pytest

from .conftest import EchoProtocol


async def _recv_some(loop: Any, sock: Any, n: int) -> bytes:
    # Never spin on EOF: a regression must fail the test, not hang it.
    chunk = await loop.sock_recv(sock, n)
    assert chunk, "unexpected EOF"
    return chunk


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_sock_recv_sendall_roundtrips(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        for i in range(200):
            msg = b"ping %d" % i
            task = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, msg)
            assert await task == msg
        buf = bytearray(10)
        await loop.sock_sendall(b, b"0123456789abc")
        assert await loop.sock_recv_into(a, buf) == 10
        assert buf == b"0123456789"
        assert await loop.sock_recv(a, 10) == b"abc"
        big = os.urandom(5_000_000)
        sender = asyncio.ensure_future(loop.sock_sendall(a, big))
        got = bytearray()
        while len(got) < len(big):
            got += await _recv_some(loop, b, 1 << 20)
        await sender
        assert got == big
        a.close()
        assert await loop.sock_recv(b, 10) == b""
        b.close()

    run(main())


def test_sock_recv_sendall_edge_arguments(run: Any) -> None:
    # The compiled fast path (recv(2)/send(2) on the fd) must give the socket methods' results
    # and errors for odd sizes, other buffer types and closed sockets.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        await loop.sock_sendall(b, b"xyz")
        assert await loop.sock_recv(a, 0) == b""
        with pytest.raises(ValueError):
            await loop.sock_recv(a, -1)
        with pytest.raises(TypeError):
            await loop.sock_recv(a, 1.5)  # type: ignore[arg-type]
        assert await loop.sock_recv(a, 2) == b"xy"
        await loop.sock_sendall(b, bytearray(b"12"))
        await loop.sock_sendall(b, memoryview(b"345"))
        got = b""
        while len(got) < 6:
            got += await _recv_some(loop, a, 100)
        assert got == b"z12345"
        b.close()
        with pytest.raises(OSError):
            await loop.sock_sendall(b, b"late")
        with pytest.raises(OSError):
            await loop.sock_recv(b, 10)
        assert await loop.sock_recv(a, 10) == b""
        a.close()

    run(main())


def test_sock_ops_registrations_released(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        # The fd is free again for the public API, as on asyncio.
        got = loop.create_future()
        loop.add_reader(a, lambda: got.set_result(a.recv(10)))
        b.send(b"direct")
        assert await asyncio.wait_for(got, 5) == b"direct"
        assert loop.remove_reader(a)
        # And for a transport.
        tr, pr = await loop.create_connection(EchoProtocol, sock=a)
        await loop.sock_sendall(b, b"echo")
        assert await loop.sock_recv(b, 10) == b"echo"
        tr.close()
        await asyncio.sleep(0)
        b.close()

    run(main())


def test_sock_ops_refuse_transport_fd(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        # sock_recv on a transport's socket first tries recv(): make that block.
        with pytest.raises(RuntimeError, match="is used by transport"):
            await loop.sock_recv(a, 10)
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(a.fileno(), lambda: None)
        tr.close()
        await asyncio.sleep(0)
        b.close()

    run(main())


def test_sock_ops_refuse_fd_a_transport_took_while_one_waited(run: Any) -> None:
    # The no-transport check runs when this module registers a socket; a transport that takes
    # the fd while a sock_recv waits must still make the next sock_* call fail.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        waiting = loop.create_task(loop.sock_recv(a, 10))
        await asyncio.sleep(0)  # the recv found nothing and waits for readability
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        with pytest.raises(RuntimeError, match="is used by transport"):
            await loop.sock_recv(a, 10)
        waiting.cancel()
        tr.close()
        await asyncio.sleep(0)
        b.close()

    run(main())


def test_sock_closed_and_fd_reused(run: Any) -> None:
    # A sock_* registration must not survive its socket: the fd number comes back at once.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(50):
            a, b = _pair()
            t = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            b.send(b"x")
            assert await t == b"x"
            a.close()
            b.close()
        a, b = _pair()
        t = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        b.send(b"y")
        assert await asyncio.wait_for(t, 5) == b"y"
        a.close()
        b.close()

    run(main())


def test_sock_connect_accept(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(lsock))
        await asyncio.sleep(0)
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, lsock.getsockname())
        conn, addr = await accept
        assert conn.gettimeout() == 0
        assert addr == c.getsockname()
        await loop.sock_sendall(c, b"abc")
        assert await loop.sock_recv(conn, 3) == b"abc"
        for s in (c, conn):
            s.close()
        port = lsock.getsockname()[1]
        lsock.close()
        r = socket.socket()
        r.setblocking(False)
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(r, ("127.0.0.1", port))
        r.close()
        ctx = ssl.create_default_context()
        with ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False,
                             server_hostname="x") as s:
            with pytest.raises(TypeError, match="SSLSocket"):
                await loop.sock_recv(s, 1)

    run(main())


def test_sock_udp_ops(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        recv = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0)
        assert await loop.sock_sendto(b, b"dgram", a.getsockname()) == 5
        assert await recv == (b"dgram", b.getsockname())
        buf = bytearray(100)
        await loop.sock_sendto(b, b"into", a.getsockname())
        n, addr = await loop.sock_recvfrom_into(a, buf)
        assert (bytes(buf[:n]), addr) == (b"into", b.getsockname())
        await loop.sock_sendto(b, b"limited", a.getsockname())
        n, addr = await loop.sock_recvfrom_into(a, buf, 3)
        assert bytes(buf[:n]) == b"lim"
        a.close()
        b.close()

    run(main())


@pytest.fixture
def datafile(tmp_path: Any) -> Any:
    data = os.urandom(1_000_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


async def _sendfile_roundtrip(path: Any, data: bytes, ssl_pair: Any = None,
                              fallback: bool = True, offset: int = 0,
                              count: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    received = bytearray()
    done = loop.create_future()

    class Sink(asyncio.Protocol):
        def data_received(self, chunk: bytes) -> None:
            received.extend(chunk)

        def connection_lost(self, exc: Any) -> None:
            done.set_result(exc)

    kw: dict[str, Any] = {}
    ckw: dict[str, Any] = {}
    if ssl_pair:
        kw["ssl"], ckw["ssl"] = ssl_pair
        ckw["server_hostname"] = "localhost"
    srv = await loop.create_server(Sink, "127.0.0.1", 0, **kw)
    port = srv.sockets[0].getsockname()[1]
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, **ckw)
    try:
        with open(path, "rb") as f:
            sent = await loop.sendfile(tr, f, offset, count, fallback=fallback)
            assert f.tell() == offset + sent
    finally:
        tr.close()
        await asyncio.wait_for(done, 5)
        srv.close()
        await srv.wait_closed()
    end = None if count is None else offset + count
    assert bytes(received) == data[offset:end]
    return sent


def test_sendfile_native_tcp(run: Any, datafile: Any) -> None:
    path, data = datafile
    assert run(_sendfile_roundtrip(path, data, fallback=False)) == len(data)
    assert run(_sendfile_roundtrip(path, data, offset=1000, count=50_000)) == 50_000


def test_sendfile_tls_falls_back(run: Any, datafile: Any, server_ctx: Any,
                                 client_ctx: Any) -> None:
    path, data = datafile
    assert run(_sendfile_roundtrip(path, data, (server_ctx, client_ctx))) == len(data)

    async def no_fallback() -> None:
        with pytest.raises(RuntimeError, match="fallback is disabled"):
            await _sendfile_roundtrip(path, b"", (server_ctx, client_ctx), fallback=False)

    run(no_fallback())


def test_sock_sendfile_and_fallback(run: Any, datafile: Any) -> None:
    path, data = datafile

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)

        async def drain(n: int) -> bytes:
            got = bytearray()
            while len(got) < n:
                got += await _recv_some(loop, b, 1 << 20)
            return bytes(got)

        with open(path, "rb") as f:
            reader = asyncio.ensure_future(drain(len(data)))
            assert await loop.sock_sendfile(a, f) == len(data)
            assert await reader == data
            assert f.tell() == len(data)
        # Not a regular file: the fallback reads and sends it.
        import io
        bio = io.BytesIO(data[:70_000])
        reader = asyncio.ensure_future(drain(70_000))
        assert await loop.sock_sendfile(a, bio) == 70_000
        assert await reader == data[:70_000]
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sock_sendfile(a, io.BytesIO(b"x"), fallback=False)
        with pytest.raises(ValueError, match="offset must be a non-negative integer"):
            await loop.sock_sendfile(a, io.BytesIO(b"x"), offset=-1)
        with pytest.raises(ValueError, match="count must be a positive integer"):
            await loop.sock_sendfile(a, io.BytesIO(b"x"), count=0)
        a.close()
        b.close()

    run(main())


@pytest.mark.parametrize("host,port,kw", [
    ("127.0.0.1", 80, {}),
    ("127.0.0.1", "8080", {"type": socket.SOCK_STREAM}),
    ("::1", 0, {"family": socket.AF_INET6}),
    (None, 1234, {"flags": socket.AI_PASSIVE}),
    (b"127.0.0.1", None, {"proto": socket.IPPROTO_UDP}),
    ("localhost", 443, {"type": socket.SOCK_STREAM}),
    ("127.0.0.1", "http", {}),
])
def test_getaddrinfo_matches_socket_module(run: Any, host: Any, port: Any, kw: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await loop.getaddrinfo(host, port, **kw) == socket.getaddrinfo(host, port, **kw)

    run(main())


def test_getaddrinfo_errors_and_getnameinfo(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("127.0.0.1", 80, family=12345)
        flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        assert await loop.getnameinfo(("127.0.0.1", 80), flags) == ("127.0.0.1", "80")

    run(main())


def test_sock_sendall_cancelled_then_socket_reused(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        task = asyncio.ensure_future(loop.sock_sendall(a, b"z" * 20_000_000))
        await asyncio.sleep(0.01)
        assert not task.done()  # the peer does not read: blocked
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        a.close()
        b.close()
        await asyncio.sleep(0)
        # The fd numbers come back for new sockets, which must work normally.
        c, d = _pair()
        t = asyncio.ensure_future(loop.sock_recv(c, 5))
        await asyncio.sleep(0)
        await loop.sock_sendall(d, b"fresh")
        assert await asyncio.wait_for(t, 5) == b"fresh"
        c.close()
        d.close()

    run(main())
