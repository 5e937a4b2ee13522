"""TLS over tideloop transports: same behaviour on asyncio and tideloop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

from .conftest import echo_handler


def test_tls_echo_streams_and_extra_info(run: Any, server_ctx: Any, client_ctx: Any) -> None:
    async def main() -> None:
        srv = await asyncio.start_server(echo_handler, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                             server_hostname="localhost")
        for size in (5, 70_000, 1_000_000):
            payload = b"t" * size
            w.write(payload)
            await w.drain()
            assert await r.readexactly(size) == payload
        tr = w.transport
        assert isinstance(tr.get_extra_info("ssl_object"), ssl.SSLObject)
        assert tr.get_extra_info("sslcontext") is client_ctx
        assert tr.get_extra_info("peercert")["subject"] == ((("commonName", "localhost"),),)
        assert tr.get_extra_info("cipher") is not None
        assert tr.get_extra_info("compression") is None
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert isinstance(tr.get_extra_info("socket"), asyncio.trsock.TransportSocket)
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())


def test_plaintext_client_to_tls_server(run: Any, server_ctx: Any, client_ctx: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await asyncio.start_server(echo_handler, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.0\r\n\r\n")
        # The server drops that connection cleanly; the client sees EOF or a reset.
        try:
            data = await asyncio.wait_for(r.read(), 5)
            assert not data.startswith(b"GET")
        except ConnectionResetError:
            pass
        w.close()
        try:
            await w.wait_closed()
        except ConnectionError:
            pass
        # And the server still serves TLS clients.
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                             server_hostname="localhost")
        w.write(b"after")
        assert await r.readexactly(5) == b"after"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        assert loop.is_running()

    run(main())
    # The failed handshake is an OSError (SSLError): only logged in debug mode, as on asyncio.
    assert not [e for e in run.errors if not isinstance(e.get("exception"), OSError)]


def test_tls_client_to_plaintext_server_fails(run: Any, client_ctx: Any) -> None:
    async def main() -> None:
        async def handler(r: Any, w: Any) -> None:
            await r.read(100)
            w.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            w.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                          server_hostname="localhost")
        srv.close()
        await srv.wait_closed()

    run(main())


def test_start_tls_upgrade(run: Any, server_ctx: Any, client_ctx: Any) -> None:
    async def main() -> None:
        async def handler(r: Any, w: Any) -> None:
            assert await r.readline() == b"STARTTLS\n"
            w.write(b"OK\n")
            await w.drain()
            await w.start_tls(server_ctx)
            line = await r.readline()
            w.write(b"secure:" + line)
            await w.drain()
            w.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS\n")
        assert await r.readline() == b"OK\n"
        await w.start_tls(client_ctx, server_hostname="localhost")
        assert w.get_extra_info("ssl_object") is not None
        w.write(b"hello\n")
        assert await r.readline() == b"secure:hello\n"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        loop = asyncio.get_running_loop()
        with pytest.raises(TypeError, match="sslcontext is expected"):
            await loop.start_tls(None, None, object())  # type: ignore[arg-type]

    run(main())


def test_tls_handshake_timeout(run: Any, client_ctx: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
        with pytest.raises((TimeoutError, ConnectionAbortedError)):
            await loop.create_connection(asyncio.Protocol, *lsock.getsockname(),
                                         ssl=client_ctx, server_hostname="localhost",
                                         ssl_handshake_timeout=0.2)
        lsock.close()
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1,
                                         ssl_handshake_timeout=1)

    run(main())


def test_tls_unix_socket(run: Any, server_ctx: Any, client_ctx: Any, tmp_path: Any) -> None:
    async def main() -> None:
        path = str(tmp_path / "tls.sock")
        srv = await asyncio.start_unix_server(echo_handler, path, ssl=server_ctx)
        r, w = await asyncio.open_unix_connection(path, ssl=client_ctx,
                                                  server_hostname="localhost")
        w.write(b"unix tls")
        assert await r.readexactly(8) == b"unix tls"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())
