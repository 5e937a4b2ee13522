"""add_reader / remove_reader / add_writer / remove_writer on sockets, pipes and file objects.

Invariant: a registered callback runs once per loop iteration while its fd is ready, re-adding
replaces it, remove_* says whether something was removed, and bad fds raise what asyncio raises.
"""
# mypy: disable-error-code="func-returns-value"
# (one-line callbacks written as tuples of calls)

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from _support import run_bounded


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_add_reader_fires_when_readable(loop: asyncio.AbstractEventLoop,
                                        pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[Any] = []

    def on_readable(tag: str) -> None:
        got.append((tag, a.recv(100)))
        loop.stop()

    assert loop.add_reader(a.fileno(), on_readable, "tag") is None
    loop.call_later(0.01, b.send, b"ping")
    run_bounded(loop)
    assert got == [("tag", b"ping")]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False


def test_io_callbacks_run_after_what_was_ready_before_the_poll(
        loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]) -> None:
    # asyncio's _run_once: callbacks already in the ready queue, then the poll's I/O callbacks,
    # then timers that came due. uvloop runs I/O first; tideloop keeps asyncio's order
    # (docs/performance.md, session 11, has what that costs aiohttp on 3.11).
    a, b = pair
    order: list[str] = []

    def on_readable() -> None:
        a.recv(100)
        order.append("io")

    def first() -> None:
        b.send(b"x")  # readable at the next poll
        loop.call_later(0, order.append, "timer")  # due at the next poll
        loop.call_soon(order.append, "soon")  # ready before the next poll
        loop.call_soon(loop.call_soon, loop.stop)  # stop once that next iteration has run

    loop.add_reader(a.fileno(), on_readable)
    loop.call_soon(first)
    run_bounded(loop)
    loop.remove_reader(a.fileno())
    assert order == ["soon", "io", "timer"]


def test_reader_keeps_firing_while_data_is_unread(loop: asyncio.AbstractEventLoop,
                                                  pair: tuple[socket.socket, socket.socket]
                                                  ) -> None:
    a, b = pair
    count = [0]

    def on_readable() -> None:
        count[0] += 1
        if count[0] == 3:  # level-triggered: fires each iteration until drained
            a.recv(100)
            loop.remove_reader(a)
            loop.stop()

    b.send(b"x")
    loop.add_reader(a, on_readable)
    run_bounded(loop)
    assert count[0] == 3


def test_add_writer_fires_when_writable(loop: asyncio.AbstractEventLoop,
                                        pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[int] = []

    def on_writable() -> None:
        got.append(a.send(b"hello"))
        assert loop.remove_writer(a.fileno()) is True
        loop.stop()

    assert loop.add_writer(a.fileno(), on_writable) is None
    run_bounded(loop)
    assert got == [5]
    assert b.recv(100) == b"hello"
    assert loop.remove_writer(a.fileno()) is False


def test_reader_and_writer_on_the_same_fd(loop: asyncio.AbstractEventLoop,
                                          pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    events: list[str] = []

    def on_write() -> None:
        events.append("write")
        loop.remove_writer(a)
        b.send(b"reply")

    def on_read() -> None:
        events.append("read")
        a.recv(100)
        loop.stop()

    loop.add_reader(a, on_read)
    loop.add_writer(a, on_write)
    run_bounded(loop)
    assert events == ["write", "read"]
    assert loop.remove_writer(a) is False  # already removed; the reader stays
    assert loop.remove_reader(a) is True


def test_removing_writer_keeps_reader(loop: asyncio.AbstractEventLoop,
                                      pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[bytes] = []
    loop.add_reader(a, lambda: (got.append(a.recv(10)), loop.stop()))
    loop.add_writer(a, lambda: None)
    assert loop.remove_writer(a) is True
    b.send(b"r")
    run_bounded(loop)
    assert got == [b"r"]
    assert loop.remove_reader(a) is True


def test_re_adding_a_reader_replaces_the_callback(loop: asyncio.AbstractEventLoop,
                                                  pair: tuple[socket.socket, socket.socket]
                                                  ) -> None:
    a, b = pair
    calls: list[str] = []

    def first() -> None:
        calls.append("first")

    def second() -> None:
        calls.append("second")
        a.recv(100)
        loop.stop()

    loop.add_reader(a, first)
    loop.add_reader(a, second)
    b.send(b"x")
    run_bounded(loop)
    assert calls == ["second"]
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_re_adding_a_writer_replaces_the_callback(loop: asyncio.AbstractEventLoop,
                                                  pair: tuple[socket.socket, socket.socket]
                                                  ) -> None:
    a, _ = pair
    calls: list[str] = []
    loop.add_writer(a, calls.append, "first")
    loop.add_writer(a, lambda: (calls.append("second"), loop.remove_writer(a), loop.stop()))
    run_bounded(loop)
    assert calls == ["second"]


def test_file_objects_are_accepted(loop: asyncio.AbstractEventLoop,
                                   pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[bytes] = []
    loop.add_reader(a, lambda: (got.append(a.recv(10)), loop.stop()))
    b.send(b"obj")
    run_bounded(loop)
    assert got == [b"obj"]
    # registered through the object, removable through the number, and the other way round
    assert loop.remove_reader(a.fileno()) is True
    loop.add_writer(a.fileno(), lambda: None)
    assert loop.remove_writer(a) is True


def test_pipes(loop: asyncio.AbstractEventLoop) -> None:
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        got: list[bytes] = []
        loop.add_reader(r, lambda: (got.append(os.read(r, 10)), loop.stop()))
        loop.call_soon(os.write, w, b"pipe")
        run_bounded(loop)
        assert got == [b"pipe"]
        assert loop.remove_reader(r) is True
    finally:
        os.close(r)
        os.close(w)


def test_reader_sees_eof_when_peer_closes(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    try:
        got: list[bytes] = []
        loop.add_reader(a, lambda: (got.append(a.recv(10)), loop.stop()))
        loop.call_soon(b.close)
        run_bounded(loop)
        assert got == [b""]
        assert loop.remove_reader(a) is True
    finally:
        a.close()
        b.close()


def test_failing_reader_is_reported_and_loop_keeps_running(
        loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))

    def bad_reader() -> None:
        a.recv(100)
        raise ValueError("reader failed")

    loop.add_reader(a, bad_reader)
    b.send(b"x")
    loop.call_later(0.02, loop.stop)
    run_bounded(loop)
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], ValueError)
    assert reported[0]["message"].startswith("Exception in callback")
    assert loop.remove_reader(a) is True


def test_remove_reader_from_inside_the_callback(loop: asyncio.AbstractEventLoop,
                                                pair: tuple[socket.socket, socket.socket]
                                                ) -> None:
    a, b = pair
    calls = [0]

    def once() -> None:
        calls[0] += 1
        loop.remove_reader(a)  # data stays unread: it must not fire again

    loop.add_reader(a, once)
    b.send(b"x")
    loop.call_later(0.02, loop.stop)
    run_bounded(loop)
    assert calls == [1]


def test_reader_removed_while_its_event_is_pending(loop: asyncio.AbstractEventLoop) -> None:
    # Two fds ready in the same iteration; the first callback removes the second's reader.
    a1, b1 = socket.socketpair()
    a2, b2 = socket.socketpair()
    try:
        calls: list[str] = []

        def first() -> None:
            calls.append("first")
            a1.recv(10)
            loop.remove_reader(a1)
            loop.remove_reader(a2)

        def second() -> None:
            calls.append("second")
            a2.recv(10)
            loop.remove_reader(a1)
            loop.remove_reader(a2)

        loop.add_reader(a1, first)
        loop.add_reader(a2, second)
        b1.send(b"x")
        b2.send(b"x")
        loop.call_later(0.02, loop.stop)
        run_bounded(loop)
        assert calls in (["first"], ["second"])  # the removed one never runs
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


@pytest.mark.parametrize("bad", [-1, "x", 1.5, object()], ids=["-1", "str", "float", "object"])
def test_invalid_fd_add(loop: asyncio.AbstractEventLoop, bad: Any) -> None:
    with pytest.raises(ValueError):
        loop.add_reader(bad, lambda: None)
    with pytest.raises(ValueError):
        loop.add_writer(bad, lambda: None)


@pytest.mark.parametrize("bad", ["x", 1.5, object()], ids=["str", "float", "object"])
def test_invalid_fd_remove(loop: asyncio.AbstractEventLoop, bad: Any) -> None:
    with pytest.raises(ValueError):
        loop.remove_reader(bad)
    with pytest.raises(ValueError):
        loop.remove_writer(bad)


def test_negative_fd_remove(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.remove_reader(-1)
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.remove_writer(-1)


def test_remove_unregistered_fd(loop: asyncio.AbstractEventLoop,
                                pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    assert loop.remove_reader(10_000) is False


def test_add_reader_on_a_closed_fd_raises(loop: asyncio.AbstractEventLoop) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        loop.add_reader(r, lambda: None)
    assert loop.remove_reader(r) is False


def test_remove_reader_of_a_closed_socket_object(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    try:
        loop.add_reader(a, lambda: None)
        a.close()  # fileno() is now -1, but the loop registered this very object
        assert loop.remove_reader(a) is True
    finally:
        a.close()
        b.close()


def test_fd_number_reused_after_closing_a_registered_socket(
        loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    c = d = None
    try:
        loop.add_reader(a, lambda: None)
        a.close()
        try:
            loop.remove_reader(a)
        except ValueError:
            pass  # (tideloop raised here once; a regression must not hide the check below)
        c, d = socket.socketpair()
        got: list[bytes] = []
        loop.add_reader(c, lambda: (got.append(c.recv(10)), loop.stop()))
        d.send(b"x")
        loop.call_later(0.5, loop.stop)
        run_bounded(loop)
        assert got == [b"x"]
        loop.remove_reader(c)
    finally:
        for s in (a, b, c, d):
            if s is not None:
                s.close()


def test_closed_loop(loop: asyncio.AbstractEventLoop,
                     pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    loop.add_reader(a, lambda: None)
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, lambda: None)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_writer(a, lambda: None)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


def test_close_releases_registrations(loop_factory: Any,
                                      pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    loop = loop_factory()
    loop.add_reader(a, lambda: None)
    loop.close()
    # the fd itself belongs to the caller and stays usable
    b.send(b"still open")
    assert a.recv(100) == b"still open"


def test_fd_owned_by_a_transport_is_refused(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    server_side: list[asyncio.StreamWriter] = []

    async def main() -> list[str]:
        server = await asyncio.start_server(lambda r, w: server_side.append(w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fd = writer.get_extra_info("socket").fileno()
        errors = []
        for call in (lambda: loop.add_reader(fd, lambda: None),
                     lambda: loop.add_writer(fd, lambda: None),
                     lambda: loop.remove_reader(fd),
                     lambda: loop.remove_writer(fd)):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        writer.close()
        await writer.wait_closed()
        while not server_side:  # the accept callback may not have run yet
            await asyncio.sleep(0.001)
        for w in server_side:
            w.close()
            await w.wait_closed()
        server.close()
        await server.wait_closed()
        return errors

    errors = run(main())
    assert len(errors) == 4
    assert all(e.startswith("File descriptor ") and " is used by transport " in e for e in errors)


def test_regular_files_are_refused(loop: asyncio.AbstractEventLoop, tmp_path: Any) -> None:
    with open(tmp_path / "f", "wb") as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f.fileno(), lambda: None)
        assert loop.remove_reader(f.fileno()) is False


@pytest.mark.parametrize("target", [3000, 70_000])
def test_high_numbered_fds(loop: asyncio.AbstractEventLoop, target: int) -> None:
    # tideloop finds fds below 65536 through a list indexed by fd and larger ones through a
    # dict: both must dispatch, and a removed fd must stay silent.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raise_limit = soft != resource.RLIM_INFINITY and soft <= target
    if raise_limit:
        try:  # the hard limit too where allowed (root)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target + 1, max(hard, target + 1)))
        except (ValueError, OSError):
            pytest.skip(f"cannot raise RLIMIT_NOFILE ({soft}, {hard}) above fd {target}")
    a, b = socket.socketpair()
    fd = -1
    try:
        fd = os.dup2(a.fileno(), target)
        got: list[bytes] = []

        def on_readable() -> None:
            got.append(os.read(fd, 100))
            loop.stop()

        loop.add_reader(fd, on_readable)
        loop.call_later(0.01, b.send, b"high")
        run_bounded(loop)
        assert got == [b"high"]
        assert loop.remove_reader(fd) is True
        # Removed: data arriving now must not run the old callback.
        b.send(b"again")
        loop.call_later(0.05, loop.stop)
        run_bounded(loop)
        assert got == [b"high"]
        # Registered again, it fires again.
        loop.add_reader(fd, on_readable)
        run_bounded(loop)
        assert got == [b"high", b"again"]
        assert loop.remove_reader(fd) is True
    finally:
        if fd >= 0:
            os.close(fd)
        a.close()
        b.close()
        if raise_limit:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
