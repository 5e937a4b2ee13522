"""Unix stream sockets (paths and the abstract namespace) and UDP: asyncio and tideloop alike."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Any

import pytest

from .conftest import EchoProtocol, echo_handler


def test_unix_path_server_and_connection(run: Any, tmp_path: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        path = str(tmp_path / "s.sock")
        srv = await asyncio.start_unix_server(echo_handler, path)
        assert os.path.exists(path)
        r, w = await asyncio.open_unix_connection(path)
        assert w.get_extra_info("peername") == path
        w.write(b"unix")
        assert await r.readexactly(4) == b"unix"
        w.close()
        await w.wait_closed()
        # A stale socket file is replaced by the next server on the same path.
        srv.close()
        await srv.wait_closed()
        # 3.13 removes the socket file on close (cleanup_socket=True by default).
        assert os.path.exists(path) == (sys.version_info < (3, 13))
        srv2 = await loop.create_unix_server(EchoProtocol, path)
        r, w = await asyncio.open_unix_connection(path)
        assert isinstance(w.transport, asyncio.Transport) and w.can_write_eof()
        w.write(b"x")
        assert await r.readexactly(1) == b"x"
        w.close()
        await w.wait_closed()
        await asyncio.sleep(0.01)  # let the server side see EOF and close
        srv2.close()
        await srv2.wait_closed()
        with pytest.raises(ValueError, match="path and sock can not be specified"):
            await loop.create_unix_server(EchoProtocol, path, sock=object())
        with pytest.raises(ValueError, match="server_hostname is only meaningful"):
            await loop.create_unix_connection(asyncio.Protocol, path, server_hostname="x")
        with pytest.raises(ValueError, match="UNIX Domain Stream Socket"):
            with socket.socket() as s:
                await loop.create_unix_connection(asyncio.Protocol, sock=s)
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(asyncio.Protocol, str(tmp_path / "missing"))

    run(main())


def test_unix_server_address_in_use(run: Any, tmp_path: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        path = str(tmp_path / "busy.sock")
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(path)
        os.chmod(tmp_path, 0o755)
        # Not a stale socket when bound by another process? asyncio removes any socket file.
        srv = await loop.create_unix_server(EchoProtocol, path)
        srv.close()
        await srv.wait_closed()
        holder.close()

    run(main())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux abstract namespace")
def test_unix_abstract_namespace(run: Any) -> None:
    async def main() -> None:
        name = f"\0tideloop-test-{os.getpid()}-{id(main)}"
        srv = await asyncio.start_unix_server(echo_handler, name)
        r, w = await asyncio.open_unix_connection(name)
        w.write(b"abstract")
        assert await r.readexactly(8) == b"abstract"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(main())


@pytest.mark.skipif(sys.version_info < (3, 13), reason="cleanup_socket is 3.13+")
def test_unix_cleanup_socket_false(run: Any, tmp_path: Any) -> None:
    async def main() -> None:
        path = str(tmp_path / "keep.sock")
        srv = await asyncio.start_unix_server(echo_handler, path, cleanup_socket=False)
        srv.close()
        await srv.wait_closed()
        assert os.path.exists(path)

    run(main())


class Dgram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.got: asyncio.Queue[Any] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.error_event = asyncio.Event()
        self.lost = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        self.error_event.set()

    def connection_lost(self, exc: Any) -> None:
        self.lost.set_result(exc)


class DgramEcho(Dgram):
    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data.upper(), addr)


def test_udp_endpoints(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stran, sproto = await loop.create_datagram_endpoint(DgramEcho, local_addr=("127.0.0.1", 0))
        addr = stran.get_extra_info("sockname")
        assert isinstance(stran, asyncio.BaseTransport)
        # Connected client.
        ctran, cproto = await loop.create_datagram_endpoint(Dgram, remote_addr=addr)
        assert ctran.get_extra_info("peername") == addr
        ctran.sendto(b"hello")
        data, from_ = await asyncio.wait_for(cproto.got.get(), 5)
        assert (data, from_) == (b"HELLO", addr)
        with pytest.raises(ValueError, match="Invalid address"):
            ctran.sendto(b"x", ("127.0.0.1", 1))
        with pytest.raises(TypeError):
            ctran.sendto("text")  # type: ignore[arg-type]
        assert ctran.get_write_buffer_size() == 0
        ctran.close()
        assert await cproto.lost is None
        # Unconnected client with an explicit address, bytearray payload.
        utran, uproto = await loop.create_datagram_endpoint(
            Dgram, local_addr=("127.0.0.1", 0), reuse_port=True)
        utran.sendto(bytearray(b"abc"), addr)
        assert (await asyncio.wait_for(uproto.got.get(), 5))[0] == b"ABC"
        utran.abort()
        assert await uproto.lost is None
        stran.close()
        await sproto.lost

    run(main())


def test_udp_error_received_and_transport_survives(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()
        s.close()
        tran, proto = await loop.create_datagram_endpoint(Dgram, remote_addr=dead)
        tran.sendto(b"nobody there")  # ICMP port unreachable comes back
        await asyncio.wait_for(proto.error_event.wait(), 5)
        assert isinstance(proto.errors[0], ConnectionRefusedError)
        assert not tran.is_closing()
        tran.close()
        await proto.lost

    run(main())


def test_udp_ipv6_and_sock_argument(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stran, sproto = await loop.create_datagram_endpoint(DgramEcho, local_addr=("::1", 0))
        addr = stran.get_extra_info("sockname")
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        ctran, cproto = await loop.create_datagram_endpoint(Dgram, sock=sock)
        ctran.sendto(b"v6", addr)
        assert (await asyncio.wait_for(cproto.got.get(), 5))[0] == b"V6"
        ctran.close()
        stran.close()
        await sproto.lost
        await cproto.lost
        with pytest.raises(ValueError, match="socket modifier keyword arguments"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                await loop.create_datagram_endpoint(Dgram, sock=s, family=socket.AF_INET)
        with pytest.raises(ValueError, match="unexpected address family"):
            await loop.create_datagram_endpoint(Dgram)
        with pytest.raises(TypeError, match="2-tuple is expected"):
            await loop.create_datagram_endpoint(Dgram, local_addr="127.0.0.1")

    run(main())


def test_unix_datagram(run: Any, tmp_path: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        spath = str(tmp_path / "srv.dgram")
        cpath = str(tmp_path / "cli.dgram")
        stran, sproto = await loop.create_datagram_endpoint(
            DgramEcho, local_addr=spath, family=socket.AF_UNIX)
        ctran, cproto = await loop.create_datagram_endpoint(
            Dgram, local_addr=cpath, remote_addr=spath, family=socket.AF_UNIX)
        ctran.sendto(b"unix dgram")
        assert (await asyncio.wait_for(cproto.got.get(), 5))[0] == b"UNIX DGRAM"
        ctran.close()
        stran.close()
        await cproto.lost
        await sproto.lost

    run(main())


def test_datagram_flow_control(run: Any, tmp_path: Any) -> None:  # noqa: C901
    # A Unix datagram peer that does not read makes sendto() block: datagrams queue up,
    # pause_writing() fires above the high-water mark and resume_writing() once drained.
    class Flow(Dgram):
        def __init__(self) -> None:
            super().__init__()
            self.events: list[str] = []
            self.resumed = asyncio.Event()

        def pause_writing(self) -> None:
            self.events.append("pause")

        def resume_writing(self) -> None:
            self.events.append("resume")
            self.resumed.set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        spath = str(tmp_path / "slow.dgram")
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b.bind(spath)
        b.setblocking(False)
        tran, proto = await loop.create_datagram_endpoint(
            Flow, local_addr=str(tmp_path / "fast.dgram"), remote_addr=spath,
            family=socket.AF_UNIX)
        tran.set_write_buffer_limits(high=4096)
        sent = 0
        while tran.get_write_buffer_size() <= 4096:
            tran.sendto(b"d" * 512)
            sent += 1
            assert sent < 100_000
        assert proto.events == ["pause"]
        got = 0
        while got < sent:
            try:
                assert b.recv(1024) == b"d" * 512
                got += 1
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await asyncio.wait_for(proto.resumed.wait(), 5)
        assert proto.events == ["pause", "resume"]
        if run.is_tideloop or sys.version_info < (3, 13):
            # asyncio 3.13 counts 8 header bytes per datagram when queueing but not when a
            # blocked send re-queues it, so its size drifts upwards; tideloop stays exact.
            assert tran.get_write_buffer_size() == 0
        tran.close()
        await proto.lost
        b.close()

    run(main())
