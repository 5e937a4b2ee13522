"""Randomised mix of clients (echo, abort, half-close, TLS, plain text to TLS) against servers.

Whatever the clients do, the servers report no loop errors, keep serving, and leak nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import ssl
from typing import Any

import pytest


async def _handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()


async def _client(port: int, kw: dict[str, Any], rnd: random.Random) -> None:
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, **kw)
    except (ConnectionError, ssl.SSLError):
        return
    try:
        for _ in range(rnd.randint(1, 4)):
            payload = os.urandom(rnd.choice([1, 100, 5000, 200_000]))
            w.write(payload)
            op = rnd.random()
            if op < 0.2:
                w.transport.abort()
                return
            if op < 0.3 and not kw:
                w.write_eof()
                assert await r.read() == payload
                break
            assert await r.readexactly(len(payload)) == payload
        w.close()
        await w.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


async def _plaintext_to_tls(port: int) -> None:
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.0\r\n\r\n" * 10)
        assert not (await r.read()).startswith(b"GET")
        w.close()
        await w.wait_closed()
    except ConnectionError:
        pass


@pytest.mark.parametrize("seed", [1, 2])
def test_random_client_mix(run: Any, seed: int, server_ctx: Any, client_ctx: Any) -> None:
    async def main() -> None:
        plain = await asyncio.start_server(_handler, "127.0.0.1", 0)
        tls = await asyncio.start_server(_handler, "127.0.0.1", 0, ssl=server_ctx)
        p1 = plain.sockets[0].getsockname()[1]
        p2 = tls.sockets[0].getsockname()[1]
        tls_kw = {"ssl": client_ctx, "server_hostname": "localhost"}
        rnd = random.Random(seed)
        await asyncio.gather(
            *(_client(p1, {}, random.Random(rnd.random())) for _ in range(120)),
            *(_client(p2, tls_kw, random.Random(rnd.random())) for _ in range(25)),
            *(_plaintext_to_tls(p2) for _ in range(10)),
        )
        for port, kw in ((p1, {}), (p2, tls_kw)):
            r, w = await asyncio.open_connection("127.0.0.1", port, **kw)
            w.write(b"still serving")
            assert await r.readexactly(13) == b"still serving"
            w.close()
            await w.wait_closed()
        for srv in (plain, tls):
            srv.close()
            await srv.wait_closed()
        await asyncio.sleep(0.05)

    run(main(), timeout=40)
    assert [c for c in run.errors if not isinstance(c.get("exception"), OSError)] == []
