"""connect_read_pipe / connect_write_pipe on pipes, FIFOs, sockets and ptys."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Any

import pytest

from .conftest import LoopFactory, is_tideloop, run


class ReadProto(asyncio.Protocol):
    def __init__(self) -> None:
        self.state = ["INITIAL"]
        self.data = bytearray()
        self.chunks = 0
        self.transport: Any = None
        self.exc: BaseException | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.got = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        assert self.state == ["INITIAL"]
        self.transport = transport
        self.state.append("CONNECTED")

    def data_received(self, data: bytes) -> None:
        assert self.state == ["INITIAL", "CONNECTED"]
        assert isinstance(data, bytes)
        self.data += data
        self.chunks += 1
        self.got.set()

    def eof_received(self) -> None:
        assert self.state == ["INITIAL", "CONNECTED"]
        self.state.append("EOF")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.state.append("CLOSED")
        self.exc = exc
        self.done.set_result(None)

    async def wait_for(self, n: int) -> None:
        while len(self.data) < n:
            self.got.clear()
            await self.got.wait()


class WriteProto(asyncio.BaseProtocol):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.transport: Any = None
        self.exc: BaseException | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")
        self.resumed.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.exc = exc
        self.done.set_result(None)


def test_read_pipe_data_eof_close(loop_factory: LoopFactory, no_leaks: None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        pipeobj = open(r, "rb", 1024)
        t, p = await loop.connect_read_pipe(ReadProto, pipeobj)
        assert p.state == ["INITIAL", "CONNECTED"] and p.transport is t
        assert t.get_extra_info("pipe") is pipeobj
        assert t.is_reading() and not t.is_closing()
        os.write(w, b"1")
        await p.wait_for(1)
        os.write(w, b"2345")
        await p.wait_for(5)
        os.close(w)
        await p.done
        assert p.state == ["INITIAL", "CONNECTED", "EOF", "CLOSED"]
        assert bytes(p.data) == b"12345" and p.exc is None
        assert pipeobj.closed and t.is_closing()

    run(loop_factory, main())


def test_read_pipe_large_stream_chunks(loop_factory: LoopFactory) -> None:
    blob = os.urandom(1 << 16) * 64  # 4 MiB

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_read_pipe(ReadProto, open(r, "rb", 0))
        wt, wp = await loop.connect_write_pipe(WriteProto, open(w, "wb", 0))
        wt.write(blob)
        wt.close()
        await p.done
        await wp.done
        return bytes(p.data)

    assert run(loop_factory, main()) == blob


def test_read_pipe_pause_resume(loop_factory: LoopFactory) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_read_pipe(ReadProto, open(r, "rb", 0))
        t.pause_reading()
        assert not t.is_reading()
        os.write(w, b"held")
        for _ in range(5):
            await asyncio.sleep(0)
        assert p.data == b""  # nothing delivered while paused
        t.resume_reading()
        await p.wait_for(4)
        assert p.data == b"held"
        t.close()
        await p.done
        os.close(w)

    run(loop_factory, main())


def test_read_pipe_close_before_data(loop_factory: LoopFactory, no_leaks: None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_read_pipe(ReadProto, open(r, "rb", 0))
        t.close()
        t.close()  # idempotent
        await p.done
        assert p.state == ["INITIAL", "CONNECTED", "CLOSED"]
        os.close(w)

    run(loop_factory, main())


def test_read_fifo_and_socket(loop_factory: LoopFactory, tmp_path: Any) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(fifo, os.O_WRONLY)
        t, p = await loop.connect_read_pipe(ReadProto, open(rfd, "rb", 0))
        os.write(wfd, b"fifo")
        os.close(wfd)
        await p.done
        a, b = socket.socketpair()
        t2, p2 = await loop.connect_read_pipe(ReadProto, a)  # a socket object is accepted too
        b.sendall(b"sock")
        b.close()
        await p2.done
        assert p2.state[-2:] == ["EOF", "CLOSED"]
        return bytes(p.data), bytes(p2.data)

    assert run(loop_factory, main()) == (b"fifo", b"sock")


def test_read_pty_master(loop_factory: LoopFactory) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        t, p = await loop.connect_read_pipe(ReadProto, open(master, "rb", 0))
        os.write(slave, b"tty")
        await p.wait_for(3)
        os.close(slave)
        # the master reports the hang-up as EIO: connection_lost without an exception handler
        await p.done
        assert p.state[-1] == "CLOSED"
        assert p.exc is None or getattr(p.exc, "errno", None) == 5

    errors: list[Any] = []

    async def guarded() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        await main()

    run(loop_factory, guarded())
    assert errors == []


@pytest.mark.parametrize("kind", ["read", "write"])
def test_regular_file_rejected(loop_factory: LoopFactory, kind: str, no_leaks: None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryFile() as f:
            if kind == "read":
                with pytest.raises(ValueError, match="Pipe transport is for pipes/sockets only."):
                    await loop.connect_read_pipe(asyncio.Protocol, f)
            else:
                with pytest.raises(
                    ValueError, match="Pipe transport is only for pipes, sockets and character"
                ):
                    await loop.connect_write_pipe(asyncio.BaseProtocol, f)

    run(loop_factory, main())


def test_write_pipe_flow_control(loop_factory: LoopFactory) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_write_pipe(WriteProto, open(w, "wb", 0))
        assert t.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        t.set_write_buffer_limits(high=1024)
        assert t.get_write_buffer_limits() == (256, 1024)
        with pytest.raises(ValueError):
            t.set_write_buffer_limits(high=1, low=2)
        assert t.can_write_eof()
        t.write(b"x" * (1 << 20))  # far more than the pipe holds
        assert t.get_write_buffer_size() > 1024
        assert p.events == ["made", "pause"]
        reader = loop.run_in_executor(None, _drain, r, 1 << 20)
        await p.resumed.wait()
        t.write(bytearray(b"tail"))
        t.write(memoryview(b"!"))
        t.write(b"")
        t.close()
        assert t.is_closing()
        await p.done
        data = await reader
        assert data == b"x" * (1 << 20) + b"tail!"
        os.close(r)
        return p.events

    assert run(loop_factory, main()) == ["made", "pause", "resume", "lost"]


def _drain(fd: int, at_least: int) -> bytes:
    out = bytearray()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return bytes(out)
        out += chunk


def test_write_pipe_peer_closes(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[list[str], Any]:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_write_pipe(WriteProto, open(w, "wb", 0))
        t.write(b"a")
        assert os.read(r, 10) == b"a"
        os.close(r)  # noticed through the reader trick, without writing again
        await p.done
        t.write(b"after")  # dropped silently, like asyncio
        return p.events, p.exc

    events, exc = run(loop_factory, main())
    assert events == ["made", "lost"] and exc is None


def test_write_pipe_peer_closes_with_data_buffered(loop_factory: LoopFactory) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        t, p = await loop.connect_write_pipe(WriteProto, a)
        t.write(b"y" * (8 << 20))  # cannot all fit in the socket buffers
        b.close()
        await p.done
        return p.exc

    assert isinstance(run(loop_factory, main()), BrokenPipeError | ConnectionResetError)


def test_write_pipe_abort_and_write_eof(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_write_pipe(WriteProto, open(w, "wb", 0))
        t.write(b"z" * (1 << 20))
        t.abort()  # buffered data is dropped
        await p.done
        assert t.get_write_buffer_size() == 0
        got = os.read(r, 1 << 20)
        assert 0 < len(got) < (1 << 20)
        os.close(r)

        r, w = os.pipe()
        t, p = await loop.connect_write_pipe(WriteProto, open(w, "wb", 0))
        t.write(b"bye")
        t.write_eof()
        await p.done
        first = os.read(r, 10)
        eof = os.read(r, 10)
        os.close(r)
        return first, eof

    assert run(loop_factory, main()) == (b"bye", b"")


def test_write_pty_and_bidirectional(loop_factory: LoopFactory) -> None:
    import tty

    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        write_slave = os.dup(slave)
        rt, rp = await loop.connect_read_pipe(ReadProto, open(slave, "rb", 0))
        wt, wp = await loop.connect_write_pipe(WriteProto, open(write_slave, "wb", 0))
        wt.write(b"out")
        got = b""
        while len(got) < 3:
            got += await loop.run_in_executor(None, os.read, master, 10)
        os.write(master, b"in")
        await rp.wait_for(2)
        wt.close()
        await wp.done
        rt.close()
        await rp.done
        os.close(master)
        return got, bytes(rp.data)

    assert run(loop_factory, main()) == (b"out", b"in")


def test_repr_after_loop_close(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    r, w = os.pipe()
    robj, wobj = open(r, "rb", 0), open(w, "wb", 0)

    async def connect() -> tuple[Any, Any]:
        rt, _ = await loop.connect_read_pipe(asyncio.Protocol, robj)
        wt, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, wobj)
        assert "fd=" in repr(rt) and "fd=" in repr(wt)
        return rt, wt

    rt, wt = loop.run_until_complete(connect())
    loop.close()
    assert "open" in repr(rt) and "open" in repr(wt)
    robj.close()
    wobj.close()
    rt._pipe = None  # the transports never ran connection_lost: keep __del__ quiet
    wt._pipe = None


def test_buffered_protocol_on_read_pipe(loop_factory: LoopFactory) -> None:
    """tideloop feeds BufferedProtocols from pipes without a copy; asyncio's pipe transport only
    knows data_received (an extension, so this runs on tideloop only)."""
    if not is_tideloop(loop_factory):
        pytest.skip("asyncio pipe transports do not support BufferedProtocol")

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(7)
            self.out = bytearray()
            self.done = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buf

        def buffer_updated(self, nbytes: int) -> None:
            self.out += self.buf[:nbytes]

        def eof_received(self) -> None:
            pass

        def connection_lost(self, exc: BaseException | None) -> None:
            self.done.set_result(bytes(self.out))

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        _, p = await loop.connect_read_pipe(Buffered, open(r, "rb", 0))
        os.write(w, b"0123456789" * 3)
        os.close(w)
        return await p.done  # type: ignore[no-any-return]

    assert run(loop_factory, main()) == b"0123456789" * 3


def test_write_pipe_copies_mutable_data(loop_factory: LoopFactory) -> None:
    """What write() could not send at once is owned by the transport: mutating the caller's
    bytearray afterwards changes nothing; a bytes object is sent exactly as given."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        t, p = await loop.connect_write_pipe(WriteProto, open(w, "wb", 0))
        mutable = bytearray(b"a" * (1 << 20))
        t.write(mutable)
        mutable[:] = b"b" * len(mutable)
        t.write(b"c" * (1 << 20))
        t.write(memoryview(mutable)[:10])
        t.close()
        reader = loop.run_in_executor(None, _drain, r, 0)
        await p.done
        data = await reader
        os.close(r)
        return data

    assert run(loop_factory, main()) == b"a" * (1 << 20) + b"c" * (1 << 20) + b"b" * 10
