"""Transport edge cases: pausing, protocol switching, failing callbacks, EINTR, sendfile waits."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

import pytest


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Any) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def _pair_transport(factory: Any = Recorder) -> tuple[Any, Any, socket.socket]:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    b.setblocking(False)
    tr, pr = await loop.create_connection(factory, sock=a)
    return tr, pr, b


async def _recv_some(loop: Any, sock: Any, n: int) -> bytes:
    # Never spin on EOF: a regression must fail the test, not hang it.
    chunk = await loop.sock_recv(sock, n)
    assert chunk, "unexpected EOF"
    return chunk


def test_pause_reading_stops_delivery(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        tr, pr, b = await _pair_transport()
        tr.pause_reading()
        tr.pause_reading()  # idempotent
        await loop.sock_sendall(b, b"held back")
        await asyncio.sleep(0.02)
        assert pr.chunks == []
        tr.resume_reading()
        while not pr.chunks:
            await asyncio.sleep(0.001)
        assert b"".join(pr.chunks) == b"held back"
        tr.close()
        assert not tr.is_reading()
        tr.resume_reading()  # no effect once closing
        assert await pr.lost is None
        b.close()

    run(main())


def test_set_protocol_switches_to_buffered(run: Any) -> None:
    class Buf(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(16)
            self.got = bytearray()

        def get_buffer(self, hint: int) -> bytearray:
            return self.buf

        def buffer_updated(self, n: int) -> None:
            self.got += self.buf[:n]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tr, pr, b = await _pair_transport()
        await loop.sock_sendall(b, b"first")
        while not pr.chunks:
            await asyncio.sleep(0.001)
        newp = Buf()
        tr.set_protocol(newp)
        assert tr.get_protocol() is newp
        await loop.sock_sendall(b, b"second part, longer than sixteen bytes")
        while len(newp.got) < 38:
            await asyncio.sleep(0.001)
        assert bytes(newp.got) == b"second part, longer than sixteen bytes"
        assert pr.chunks == [b"first"]
        tr.close()
        await asyncio.sleep(0)
        b.close()

    run(main())


@pytest.mark.parametrize("where", ["get_buffer", "buffer_updated", "eof_received"])
def test_failing_callbacks_close_connection(run: Any, where: str) -> None:
    class Bad(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.lost = asyncio.get_running_loop().create_future()

        def get_buffer(self, hint: int) -> bytearray:
            if where == "get_buffer":
                raise KeyError("get_buffer")
            return bytearray(100)

        def buffer_updated(self, n: int) -> None:
            if where == "buffer_updated":
                raise KeyError("buffer_updated")

        def eof_received(self) -> None:
            raise KeyError("eof_received")

        def connection_lost(self, exc: Any) -> None:
            self.lost.set_result(exc)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tr, pr, b = await _pair_transport(Bad)
        if where == "eof_received":
            b.shutdown(socket.SHUT_WR)
        else:
            await loop.sock_sendall(b, b"data")
        exc = await pr.lost
        assert isinstance(exc, KeyError)
        b.close()

    run(main())
    assert len(run.errors) == 1
    assert run.errors[0]["message"] == f"Fatal error: protocol.{where}() call failed."


def test_eintr_during_transfer(run: Any) -> None:
    # Signals arriving every millisecond interrupt syscalls; nothing may be lost or raised.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        tr, pr, b = await _pair_transport()
        hits = []
        old = signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        try:
            payload = os.urandom(4_000_000)
            tr.write(payload)
            got = bytearray()
            while len(got) < len(payload):
                got += await _recv_some(loop, b, 1 << 16)
            assert got == payload
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, old)
        tr.close()
        await pr.lost
        b.close()

    run(main())


def test_sendfile_waits_for_buffered_writes(run: Any, tmp_path: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        path = tmp_path / "f.bin"
        path.write_bytes(b"F" * 300_000)
        tr, pr, b = await _pair_transport()
        tr.write(b"H" * 3_000_000)  # still buffered when sendfile starts
        assert tr.get_write_buffer_size() > 0

        async def reader() -> bytes:
            got = bytearray()
            while len(got) < 3_300_000:
                got += await _recv_some(loop, b, 1 << 20)
            return bytes(got)

        task = asyncio.ensure_future(reader())
        with open(path, "rb") as f:
            assert await loop.sendfile(tr, f) == 300_000
        data = await task
        assert data == b"H" * 3_000_000 + b"F" * 300_000
        tr.close()
        with open(path, "rb") as f, pytest.raises(RuntimeError, match="Transport is closing"):
            await loop.sendfile(tr, f)
        await pr.lost
        b.close()

    run(main())


def test_write_memoryview_formats(run: Any) -> None:
    import array

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tr, pr, b = await _pair_transport()
        ints = array.array("i", range(1000))
        tr.write(memoryview(ints))  # 4000 bytes, 1000 items
        tr.writelines([memoryview(array.array("h", [1, 2])), b"!"])
        expected = ints.tobytes() + array.array("h", [1, 2]).tobytes() + b"!"
        got = bytearray()
        while len(got) < len(expected):
            chunk = await loop.sock_recv(b, 65536)
            assert chunk, "unexpected EOF"
            got += chunk
        assert bytes(got) == expected
        tr.close()
        await pr.lost
        b.close()

    run(main())


def test_allocator_hint_runs_once_and_keeps_large_echoes_intact(run: Any) -> None:
    # The hint is a process-wide side effect: it must be idempotent and must not disturb data.
    from tideloop import _sockio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tr, pr, b = await _pair_transport()
        _sockio.hint_allocator()
        _sockio.hint_allocator()
        if loop.__class__.__module__.startswith("tideloop"):
            assert _sockio._alloc_hinted
        payload = bytes(range(256)) * 400  # 100 KiB, larger than glibc's default trim threshold
        for _ in range(5):
            await loop.sock_sendall(b, payload)
            while sum(map(len, pr.chunks)) < len(payload):
                await asyncio.sleep(0.001)
            assert b"".join(pr.chunks) == payload
            pr.chunks.clear()
        tr.close()
        await pr.lost
        b.close()

    run(main())


@pytest.mark.parametrize("end", ["eof", "reset"])
def test_large_read_then_eof_or_reset(run: Any, end: str) -> None:
    # After a large read the compiled transport receives straight into a new bytes object:
    # EOF and errors must come out of that path exactly as out of the copying one.
    async def main() -> None:
        tr, pr, b = await _pair_transport()
        eof = asyncio.get_running_loop().create_future()
        pr.eof_received = lambda: eof.set_result(True)  # type: ignore[method-assign]
        payload = os.urandom(200 * 1024)
        b.setblocking(True)
        b.sendall(payload)
        while sum(map(len, pr.chunks)) < len(payload):
            await asyncio.sleep(0.001)
        assert b"".join(pr.chunks) == payload
        if end == "reset":
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            b.close()
            exc = await pr.lost
            assert exc is None or isinstance(exc, ConnectionError)
        else:
            b.shutdown(socket.SHUT_WR)
            assert await eof
            await pr.lost
            b.close()
        assert tr.is_closing()

    run(main())
