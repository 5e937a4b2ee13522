"""Loop-parametrized fixtures: every network test runs on stock asyncio and on tideloop.

Each test body is a coroutine run by ``run(coro)`` on a fresh loop, bounded by a timeout; the
loop's exception-handler calls are collected in ``errors`` and fds are counted around the test.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import tideloop

CERT_DIR = os.path.join(os.path.dirname(__file__), "certs")
CERT = os.path.join(CERT_DIR, "cert.pem")
KEY = os.path.join(CERT_DIR, "key.pem")

LOOPS = {
    "asyncio": asyncio.SelectorEventLoop,
    "tideloop": tideloop.new_event_loop,
}


def _open_fds() -> set[int]:
    if not os.path.isdir("/proc/self/fd"):
        return set()
    return {int(n) for n in os.listdir("/proc/self/fd")}


class Runner:
    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[dict[str, Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_tideloop(self) -> bool:
        return self.name == "tideloop"

    def new_loop(self) -> asyncio.AbstractEventLoop:
        return LOOPS[self.name]()

    def __call__(self, coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        loop = self.loop = self.new_loop()
        loop.set_exception_handler(lambda lp, ctx: self.errors.append(ctx))
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                self.loop = None


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Any:
    before = _open_fds()
    runner = Runner(request.param)
    yield runner
    # Anything the test opened must be closed again (transports, servers, sockets).
    leaked = _open_fds() - before
    assert not leaked, f"fds leaked: {sorted(leaked)}"


@pytest.fixture
def server_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


@pytest.fixture
def client_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CERT)
    return ctx


def py_at_least(*version: int) -> bool:
    return sys.version_info >= version


Factory = Callable[[], asyncio.Protocol]


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
