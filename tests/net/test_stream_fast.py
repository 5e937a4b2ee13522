"""Streams through the transport's fast path behave exactly as through data_received.

On tideloop (compiled and interpreted), a plain StreamReaderProtocol is fed without its Python
methods (see _stream_transport._feed_stream_reader); every test here also runs on stock asyncio,
which is the reference for what the reader, its flow control and its waiters must do.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tideloop
from tideloop import _compat


async def _pair(limit: int = 2 ** 16) -> tuple[Any, asyncio.StreamReader, asyncio.StreamWriter,
                                              asyncio.StreamWriter]:
    """A server whose handler hands its streams back, and a connected client writer."""
    got: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
        asyncio.get_running_loop().create_future()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.set_result((r, w))

    srv = await asyncio.start_server(handler, "127.0.0.1", 0, limit=limit)
    port = srv.sockets[0].getsockname()[1]
    _, cw = await asyncio.open_connection("127.0.0.1", port)
    sr, sw = await got
    return srv, sr, sw, cw


async def _close(srv: Any, *writers: asyncio.StreamWriter) -> None:
    for w in writers:
        w.close()
    for w in writers:
        try:
            await w.wait_closed()
        except ConnectionError:
            pass
    srv.close()
    await srv.wait_closed()


def test_reader_pauses_the_transport_past_twice_its_limit_and_resumes(run: Any) -> None:
    async def main() -> None:
        srv, sr, sw, cw = await _pair(limit=1024)
        payload = bytes(range(256)) * 64  # 16 KiB: far past 2 * limit
        cw.write(payload)
        await cw.drain()
        for _ in range(200):
            if sr._paused:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.005)
        assert sr._paused  # type: ignore[attr-defined]
        assert not sw.transport.is_reading()  # type: ignore[attr-defined]
        assert await sr.readexactly(len(payload)) == payload
        assert not sr._paused  # type: ignore[attr-defined]
        assert sw.transport.is_reading()  # type: ignore[attr-defined]
        await _close(srv, cw, sw)

    run(main())


def test_a_waiting_read_is_woken_and_a_cancelled_one_is_skipped(run: Any) -> None:
    async def main() -> None:
        srv, sr, sw, cw = await _pair()
        cancelled = asyncio.ensure_future(sr.read(10))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        reading = asyncio.ensure_future(sr.readexactly(5))
        await asyncio.sleep(0.01)
        cw.write(b"hello")
        assert await asyncio.wait_for(reading, 5) == b"hello"
        cw.write_eof()
        assert await sr.read() == b""
        assert sr.at_eof()
        await _close(srv, cw, sw)

    run(main())


def test_subclassed_reader_and_patched_feed_data_are_honoured(run: Any,
                                                             monkeypatch: Any) -> None:
    seen: list[bytes] = []
    original = asyncio.StreamReader.feed_data

    def spy(self: asyncio.StreamReader, data: bytes) -> None:
        seen.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", spy)

    async def main() -> None:
        srv, sr, sw, cw = await _pair()
        cw.write(b"abc")
        assert await sr.readexactly(3) == b"abc"
        await _close(srv, cw, sw)

    run(main())
    assert b"".join(seen) == b"abc"


@pytest.mark.skipif(not _compat.STREAM_FAST_PATH,
                    reason="the fast path runs only on Python versions checked for it")
def test_plain_streams_take_the_fast_path_on_tideloop() -> None:
    async def main() -> None:
        srv, sr, sw, cw = await _pair()
        assert sw.transport._stream_fast  # type: ignore[attr-defined]
        assert cw.transport._stream_fast  # type: ignore[attr-defined]
        await _close(srv, cw, sw)

    tideloop.run(main())
