"""TCP transports, servers and streams: same behaviour on asyncio and on tideloop."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

import pytest

from .conftest import EchoProtocol, echo_handler


async def _echo_server(**kw: Any) -> tuple[asyncio.AbstractServer, int]:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(EchoProtocol, "127.0.0.1", 0, **kw)
    return srv, srv.sockets[0].getsockname()[1]


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost: Any = "not yet"
        self.done = asyncio.get_running_loop().create_future()
        self.made = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.data += data

    def eof_received(self) -> Any:
        self.eof = True
        return None

    def connection_lost(self, exc: Any) -> None:
        self.lost = exc
        if not self.done.done():
            self.done.set_result(None)


def test_protocol_echo_and_transport_api(run: Any) -> None:
    async def main() -> None:
        srv, port = await _echo_server()
        loop = asyncio.get_running_loop()
        tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)
        assert isinstance(tr, asyncio.Transport)
        assert tr.get_protocol() is pr
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        sock = tr.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert tr.get_extra_info("nonexistent", 42) == 42
        assert tr.can_write_eof() and tr.is_reading() and not tr.is_closing()
        tr.write(b"hello ")
        tr.writelines([b"wor", bytearray(b"ld"), memoryview(b"!")])
        while len(pr.data) < 12:
            await asyncio.sleep(0.001)
        assert bytes(pr.data) == b"hello world!"
        with pytest.raises(TypeError):
            tr.write("text")  # type: ignore[arg-type]
        assert tr.get_write_buffer_size() == 0
        assert tr.get_write_buffer_limits() == (16384, 65536)
        tr.set_write_buffer_limits(high=1000)
        assert tr.get_write_buffer_limits() == (250, 1000)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=1, low=2)
        tr.pause_reading()
        assert not tr.is_reading()
        tr.resume_reading()
        assert tr.is_reading()
        tr.write_eof()
        with pytest.raises(RuntimeError):
            tr.write(b"x")
        await pr.done
        assert pr.eof and pr.lost is None and tr.is_closing()
        srv.close()
        await srv.wait_closed()

    run(main())


def test_write_checks_in_asyncio_order(run: Any) -> None:
    async def main() -> None:
        srv, port = await _echo_server()
        loop = asyncio.get_running_loop()
        tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)

        class Raw(bytes):
            pass

        # Empty data of every accepted type sends nothing and raises nothing.
        for empty in (b"", bytearray(), memoryview(b""), Raw()):
            tr.write(empty)
        # A bytes subclass, a bytearray the caller reuses, and a memoryview of non-byte items
        # are sent as their raw bytes.
        buf = bytearray(b"cd")
        tr.write(Raw(b"ab"))
        tr.write(buf)
        buf[:] = b"zz"
        tr.write(memoryview(b"efgh").cast("H"))
        while len(pr.data) < 8:
            await asyncio.sleep(0.001)
        assert bytes(pr.data) == b"abcdefgh"
        assert tr.get_write_buffer_size() == 0
        tr.write_eof()
        # The type is checked before the EOF state, the EOF state before emptiness.
        with pytest.raises(TypeError, match="bytes-like object, not 'str'"):
            tr.write("")  # type: ignore[arg-type]
        for empty in (b"", bytearray(), memoryview(b"")):
            with pytest.raises(RuntimeError, match="write_eof"):
                tr.write(empty)
        await pr.done
        srv.close()
        await srv.wait_closed()

    run(main())


def test_streams_echo_many_sizes(run: Any) -> None:
    async def main() -> None:
        srv = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for size in (1, 1000, 65536, 300_000, 3_000_000):
            payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
            w.write(payload)
            await w.drain()
            assert await r.readexactly(size) == payload
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())


def test_buffered_protocol(run: Any) -> None:
    class BP(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(100)
            self.got = bytearray()
            self.sizes: list[int] = []
            self.done = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> memoryview:
            return memoryview(self.buf)

        def buffer_updated(self, nbytes: int) -> None:
            self.sizes.append(nbytes)
            self.got += self.buf[:nbytes]

        def eof_received(self) -> None:
            pass

        def connection_lost(self, exc: Any) -> None:
            self.done.set_result(exc)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(BP, sock=a)
        payload = b"0123456789" * 100
        b.sendall(payload)
        b.close()
        assert await pr.done is None
        assert bytes(pr.got) == payload
        assert max(pr.sizes) <= 100

    run(main())


def test_half_close_eof_received_true_keeps_transport_open(run: Any) -> None:
    class HalfClose(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.data = b""

        def data_received(self, data: bytes) -> None:
            self.data += data

        def eof_received(self) -> bool:
            # Answer after the peer finished sending: the transport must still write.
            self.transport.write(b"reply:" + self.data)
            self.transport.close()
            return True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(HalfClose, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"question")
        w.write_eof()
        assert await r.read() == b"reply:question"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())


def test_eof_mid_message(run: Any) -> None:
    async def main() -> None:
        async def handler(r: Any, w: Any) -> None:
            w.write(b"partial")
            await w.drain()
            w.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await r.readexactly(100)
        assert info.value.partial == b"partial"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())


def _rst(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout turns close() into a RST.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def test_peer_reset_during_read(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))
        port = lsock.getsockname()[1]
        tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)
        conn, _ = lsock.accept()
        conn.sendall(b"some")
        while not pr.data:
            await asyncio.sleep(0.001)
        _rst(conn)
        await pr.done
        assert isinstance(pr.lost, ConnectionResetError)
        assert tr.is_closing()
        lsock.close()

    run(main())
    assert run.errors == []  # OSErrors from the peer are not loop errors


def test_peer_reset_during_write(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))
        port = lsock.getsockname()[1]
        tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)
        conn, _ = lsock.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        tr.write(b"x" * 8_000_000)  # far more than the kernel buffers hold
        assert tr.get_write_buffer_size() > 0
        _rst(conn)
        await pr.done
        assert isinstance(pr.lost, (ConnectionResetError, BrokenPipeError))
        assert tr.get_write_buffer_size() == 0
        lsock.close()

    run(main())
    assert run.errors == []


def test_writes_after_connection_lost_warn(run: Any, caplog: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))
        tr, pr = await loop.create_connection(Collect, *lsock.getsockname())
        conn, _ = lsock.accept()
        _rst(conn)
        await pr.done
        for _ in range(10):
            tr.write(b"data")  # no exception, as on asyncio
        lsock.close()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run(main())
    warnings = [r for r in caplog.records if "socket.send() raised exception." in r.message]
    assert len(warnings) == 6  # asyncio starts warning from the 5th write after the loss


def test_write_to_closing_transport(run: Any) -> None:
    async def main() -> None:
        srv, port = await _echo_server()
        loop = asyncio.get_running_loop()
        tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)
        tr.close()
        assert tr.is_closing()
        tr.write(b"ignored?")  # asyncio sends it: close() only stops reading
        tr.close()  # idempotent
        await pr.done
        assert pr.lost is None
        srv.close()
        await srv.wait_closed()

    run(main())


def test_protocol_callback_raises(run: Any) -> None:
    class Boom(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            if data.startswith(b"boom"):
                raise ZeroDivisionError("protocol bug")
            self.transport.write(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Boom, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(b"boom")
        assert await r1.read() == b""  # the server closed that connection
        w1.close()
        await w1.wait_closed()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"fine")
        assert await r2.readexactly(4) == b"fine"  # and keeps serving others
        w2.close()
        await w2.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())
    assert len(run.errors) == 1
    ctx = run.errors[0]
    assert ctx["message"] == "Fatal error: protocol.data_received() call failed."
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert "transport" in ctx and "protocol" in ctx


def test_data_received_is_looked_up_per_call(run: Any) -> None:
    # asyncio's transports call protocol.data_received afresh for every chunk: a protocol that
    # rebinds it on the instance (a state machine) gets the new method from the next chunk on.
    class Switching(asyncio.Protocol):
        def __init__(self) -> None:
            self.got: list[tuple[str, bytes]] = []
            self.done = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.got.append(("first", data))
            self.data_received = self.later  # type: ignore[method-assign]
            self.transport.write(b"ack")

        def later(self, data: bytes) -> None:
            self.got.append(("later", data))
            self.done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protos: list[Switching] = []
        srv = await loop.create_server(lambda: protos.append(Switching()) or protos[-1],
                                       "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"one")
        assert await r.readexactly(3) == b"ack"
        w.write(b"two")
        await protos[0].done
        assert protos[0].got == [("first", b"one"), ("later", b"two")]
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())


def test_write_to_a_reset_connection_closes_the_transport(run: Any) -> None:
    # send() failing with a real error (not EAGAIN) is a fatal write error: write() itself
    # does not raise, the protocol loses the connection with that OSError, and later writes
    # are dropped quietly, as in asyncio.
    import struct

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        lsock.setblocking(False)
        tr, pr = await loop.create_connection(Collect, *lsock.getsockname())
        peer, _ = await loop.sock_accept(lsock)
        tr.pause_reading()  # so the reset is found by the write, not by a read
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        lsock.close()
        await asyncio.sleep(0.05)
        for _ in range(3):  # the first send may still succeed; one of these fails
            tr.write(b"x" * 1024)
            if tr.is_closing():
                break
            await asyncio.sleep(0.01)
        await pr.done
        assert isinstance(pr.lost, (ConnectionResetError, BrokenPipeError)), pr.lost
        tr.write(b"after")  # dropped, no exception
        assert tr.is_closing()

    run(main())


def test_flow_control_64mib_slow_reader(run: Any) -> None:
    total = 64 * 1024 * 1024

    class Writer(asyncio.Protocol):
        def __init__(self) -> None:
            self.events: list[str] = []
            self.resumed = asyncio.Event()

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def pause_writing(self) -> None:
            self.events.append("pause")

        def resume_writing(self) -> None:
            self.events.append("resume")
            self.resumed.set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        tr, pr = await loop.create_connection(Writer, *lsock.getsockname())
        conn, _ = await loop.sock_accept(lsock)
        tr.write(b"\xab" * total)
        assert pr.events == ["pause"]
        assert tr.get_write_buffer_size() > 0
        received = 0
        buf = bytearray(1 << 20)
        while received < total:
            n = await loop.sock_recv_into(conn, buf)
            assert n
            received += n
            if received % (8 << 20) < n:
                await asyncio.sleep(0.001)  # a slow reader
        await asyncio.wait_for(pr.resumed.wait(), 5)
        assert pr.events == ["pause", "resume"]
        assert tr.get_write_buffer_size() == 0
        tr.close()
        conn.close()
        lsock.close()
        await asyncio.sleep(0)

    run(main(), timeout=30)


def test_thousand_concurrent_connections(run: Any) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        if hard != resource.RLIM_INFINITY and hard < 2500:
            pytest.skip("RLIMIT_NOFILE too low for 1000 connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2500, hard))

    async def main() -> None:
        srv = await asyncio.start_server(echo_handler, "127.0.0.1", 0, backlog=1024)
        port = srv.sockets[0].getsockname()[1]

        async def client(i: int) -> bytes:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            msg = b"client %d" % i
            w.write(msg)
            data = await r.readexactly(len(msg))
            w.close()
            await w.wait_closed()
            return data

        async def opened(i: int) -> tuple[Any, Any]:
            return await asyncio.open_connection("127.0.0.1", port)

        # All 1000 connected at the same time, then all talk at once.
        pairs = await asyncio.gather(*(opened(i) for i in range(1000)))
        for i, (_, w) in enumerate(pairs):
            w.write(b"%06d" % i)
        got = await asyncio.gather(*(r.readexactly(6) for r, _ in pairs))
        assert got == [b"%06d" % i for i in range(1000)]
        for _, w in pairs:
            w.close()
        await asyncio.gather(*(w.wait_closed() for _, w in pairs))
        assert await client(1) == b"client 1"
        srv.close()
        await srv.wait_closed()

    run(main(), timeout=30)


def test_no_fd_leak_connect_close_cycles(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv, port = await _echo_server()
        for _ in range(2000):
            tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)
            tr.close()
            await pr.done
        srv.close()
        await srv.wait_closed()

    run(main(), timeout=30)  # the fixture asserts no fd was left open


def test_create_connection_errors(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nobody listens there
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with pytest.raises(ValueError, match="host/port and sock"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, sock=object())
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                         server_hostname="x")
        with pytest.raises(ValueError, match="no sock specified"):
            await loop.create_connection(asyncio.Protocol)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(ValueError, match="A Stream Socket was expected"):
            await loop.create_connection(asyncio.Protocol, sock=u)
        u.close()
        if sys.version_info >= (3, 12):
            with pytest.raises(ExceptionGroup) as info:
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                             all_errors=True)
            assert isinstance(info.value.exceptions[0], ConnectionRefusedError)

    run(main())


def test_happy_eyeballs_falls_through_to_working_address(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv, port = await _echo_server()
        dead = socket.socket(socket.AF_INET6)
        dead.bind(("::1", 0))
        dead_port = dead.getsockname()[1]
        dead.close()

        async def fake_getaddrinfo(host: Any, port_: Any, **kw: Any) -> list[Any]:
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", dead_port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]

        loop.getaddrinfo = fake_getaddrinfo  # type: ignore[method-assign]
        tr, pr = await loop.create_connection(Collect, "example.invalid", 1,
                                              happy_eyeballs_delay=0.05)
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        tr.close()
        await pr.done
        tr, pr = await loop.create_connection(Collect, "example.invalid", 1, interleave=2)
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        tr.close()
        await pr.done
        srv.close()
        await srv.wait_closed()

    run(main())


def test_local_addr_and_ipv6(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(EchoProtocol, "::1", 0)
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(Collect, "::1", port, local_addr=("::1", 0))
        assert tr.get_extra_info("peername")[:2] == ("::1", port)
        tr.write(b"v6")
        while bytes(pr.data) != b"v6":
            await asyncio.sleep(0.001)
        tr.close()
        await pr.done
        srv.close()
        await srv.wait_closed()

    run(main())


def test_server_api(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(EchoProtocol, ["127.0.0.1", "::1"], 0,
                                       start_serving=False, reuse_port=True)
        assert isinstance(srv, asyncio.AbstractServer)
        assert srv.get_loop() is loop
        assert not srv.is_serving()
        assert {s.family for s in srv.sockets} == {socket.AF_INET, socket.AF_INET6}
        await srv.start_serving()
        assert srv.is_serving()
        port = [s for s in srv.sockets if s.family == socket.AF_INET][0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"hi")
        assert await r.readexactly(2) == b"hi"
        task = asyncio.ensure_future(srv.serve_forever())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already being awaited"):
            await srv.serve_forever()
        w.close()
        await w.wait_closed()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert not srv.is_serving() and srv.sockets == ()
        await asyncio.wait_for(srv.wait_closed(), 5)
        with pytest.raises(RuntimeError, match="is closed"):
            await srv.serve_forever()
        async with await loop.create_server(EchoProtocol, "127.0.0.1", 0) as srv2:
            assert srv2.is_serving()
        assert not srv2.is_serving()
        with pytest.raises(TypeError):
            await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=True)
        with pytest.raises(ValueError, match="Neither host/port nor sock"):
            await loop.create_server(EchoProtocol)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        busy = s.getsockname()[1]
        s.listen()
        with pytest.raises(OSError) as info:
            await loop.create_server(EchoProtocol, "127.0.0.1", busy, reuse_address=False)
        assert "error while attempting to bind on address" in str(info.value)
        s.close()

    run(main())


@pytest.mark.skipif(sys.version_info < (3, 13), reason="Server.close_clients is 3.13+")
def test_server_close_and_abort_clients(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(EchoProtocol, "127.0.0.1", 0, keep_alive=True)
        port = srv.sockets[0].getsockname()[1]
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for r, w in conns:
            w.write(b"x")
            await r.readexactly(1)
        srv.close()
        waiter = asyncio.ensure_future(srv.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # connections still open
        srv.close_clients()
        for r, _ in conns[:2]:
            assert await r.read() == b""
        srv.abort_clients()
        await asyncio.wait_for(waiter, 5)
        for _, w in conns:
            w.close()

    run(main())


def test_wait_closed_waits_for_connections_on_312_1(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv, port = await _echo_server()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"1")
        await r.readexactly(1)
        srv.close()
        waiter = asyncio.ensure_future(srv.wait_closed())
        await asyncio.sleep(0.01)
        # 3.12.1 fixed wait_closed; 3.11 returns at once. tideloop follows the running Python.
        assert waiter.done() == (sys.version_info < (3, 12, 1))
        w.close()
        await asyncio.wait_for(waiter, 5)
        assert loop.is_running()

    run(main())


def test_connect_accepted_socket(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(lsock.getsockname())
        conn, _ = lsock.accept()
        tr, pr = await loop.connect_accepted_socket(EchoProtocol, conn)
        client.setblocking(False)
        await loop.sock_sendall(client, b"accepted")
        assert await loop.sock_recv(client, 100) == b"accepted"
        client.close()
        await asyncio.sleep(0.05)
        assert tr.is_closing()
        lsock.close()
        with pytest.raises(ValueError, match="Stream Socket"):
            with socket.socket(type=socket.SOCK_DGRAM) as u:
                await loop.connect_accepted_socket(EchoProtocol, u)

    run(main())


def test_emfile_on_accept_server_keeps_serving(run: Any, tmp_path: Any) -> None:
    import subprocess
    import textwrap

    script = tmp_path / "emfile.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, resource, socket, sys
        sys.path[:0] = {sys.path!r}
        import tideloop
        loops = {{"asyncio": asyncio.SelectorEventLoop, "tideloop": tideloop.new_event_loop}}
        errors = []

        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda l, c: errors.append(c))
            class Echo(asyncio.Protocol):
                def connection_made(self, t):
                    self.t = t
                def data_received(self, d):
                    self.t.write(d)
            srv = await loop.create_server(Echo, "127.0.0.1", 0)
            port = srv.sockets[0].getsockname()[1]
            # Use up the fd table so accept() fails with EMFILE.
            hog = []
            clients = []
            try:
                while True:
                    hog.append(socket.socket())
            except OSError:
                pass
            for s in hog[-3:]:
                s.close()
            del hog[-3:]
            for _ in range(3):
                c = socket.socket(); c.setblocking(False)
                try:
                    c.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                clients.append(c)
            for _ in range(100):
                await asyncio.sleep(0.01)
                if errors:
                    break
            for s in hog:
                s.close()
            # After the retry delay the server accepts the pending connections.
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"ping")
            print("ECHO", await asyncio.wait_for(r.readexactly(4), 5))
            w.close()
            for s in clients:
                s.close()
            srv.close()
            print("MSG", errors[0]["message"] if errors else None)
            print("ERR", type(errors[0]["exception"]).__name__ if errors else None)
            print("OK")

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        loop = loops[sys.argv[1]]()
        loop.run_until_complete(asyncio.wait_for(main(), 15))
        loop.close()
    """))
    out = subprocess.run([sys.executable, str(script), run.name], capture_output=True,
                         text=True, timeout=30)
    assert "OK" in out.stdout, out.stderr
    assert "MSG socket.accept() out of system resource" in out.stdout
    assert "ERR OSError" in out.stdout
    assert "ECHO b'ping'" in out.stdout  # accepting resumed after the back-off
