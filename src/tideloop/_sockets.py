"""Low-level ``sock_*`` coroutines with sticky reactor registrations.

Invariant: each fd has at most one reader and one writer registration owned by this module; a
registration outlives the operation that created it until a deferred check (one ``call_soon``
later) finds no operation waiting, so a task looping on sock_recv/sock_sendall re-arms nothing.
Any other owner of the fd (a transport, public ``add_reader``) first calls ``_tl_forget_fd``.
"""

from __future__ import annotations

import collections
import errno
import io
import os
import socket
import sys
from asyncio import constants, exceptions
from typing import Any

from ._sockio import hint_allocator, try_recv, try_send

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover
    _ssl = None  # type: ignore[assignment]

_AGAIN = object()  # an operation's step returns this to keep waiting
_SOCKET_TYPE = socket.socket


def check_ssl_socket(sock: Any) -> None:
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


class _FdOps:
    """Pending operations on one socket, in arrival order."""

    __slots__ = ("sock", "readers", "writers", "rreg", "wreg", "check_pending")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.readers: collections.deque[Any] = collections.deque()
        self.writers: collections.deque[Any] = collections.deque()
        self.rreg = False
        self.wreg = False
        self.check_pending = False


def _accept_step(sock: Any) -> Any:
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address


def _ready_step() -> None:
    return None


# Steps look the method up on every attempt (as asyncio does), so a patched socket works.
def _recv_step(sock: Any, n: int) -> Any:
    return sock.recv(n)


def _try_recv_step(sock: Any, n: int) -> Any:
    # Only for an exact socket.socket, whose methods cannot be patched per instance.
    data = try_recv(sock, n)
    return _AGAIN if data is None else data


def _recv_into_step(sock: Any, buf: Any) -> Any:
    return sock.recv_into(buf)


def _recvfrom_step(sock: Any, n: int) -> Any:
    return sock.recvfrom(n)


def _recvfrom_into_step(sock: Any, buf: Any, n: int) -> Any:
    return sock.recvfrom_into(buf, n)


def _sendto_step(sock: Any, data: Any, address: Any) -> Any:
    return sock.sendto(data, 0, address)


# The readiness path's helpers are module functions, not loop methods: compiled, a call of a
# module function skips the method lookup through EventLoop's eleven-class MRO (and the bound
# method) that each `self._tl_...` call made, twice per completed operation.


def _schedule_check(loop: Any, fd: int, ops: _FdOps) -> None:
    if not ops.check_pending:
        ops.check_pending = True
        loop.call_soon(_check, loop, fd, ops)


def _check(loop: Any, fd: int, ops: _FdOps) -> None:
    """One iteration after an operation finished: drop registrations nobody waits on."""
    ops.check_pending = False
    table = loop._tl_ops
    if table is None or table.get(fd) is not ops:
        return
    if ops.rreg and not ops.readers:
        ops.rreg = False
        loop._remove_reader(fd)
    if ops.wreg and not ops.writers:
        ops.wreg = False
        loop._remove_writer(fd)
    if not ops.rreg and not ops.wreg:
        del table[fd]


def _run_queue(loop: Any, fd: int, ops: _FdOps, queue: collections.deque[Any]) -> None:
    """Complete the first waiting operation of queue if the socket lets it."""
    while queue:
        fut, step, args = queue[0]
        if fut.done():
            queue.popleft()
            continue
        try:
            result = step(*args)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            queue.popleft()
            fut.set_exception(exc)
        else:
            if result is _AGAIN:
                return
            queue.popleft()
            fut.set_result(result)
        # One completion per readiness event: a second recv would most likely be EAGAIN.
        break
    if not queue:
        _schedule_check(loop, fd, ops)


class SocketOpsMixin:
    """The loop's ``sock_*`` methods; relies only on the core contract (see BRIEF)."""

    _tl_ops: dict[int, _FdOps] | None = None
    _debug: bool
    _transports: Any

    # -- bookkeeping ------------------------------------------------------------------------------

    def _tl_ensure_no_transport(self, fd: int) -> None:
        transport = self._transports.get(fd)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def _tl_forget_fd(self, fd: int) -> None:
        """Drop this module's registrations on fd because another owner takes it over."""
        table = self._tl_ops
        if not table:
            return
        ops = table.pop(fd, None)
        if ops is None:
            return
        if ops.rreg:
            self._remove_reader(fd)  # type: ignore[attr-defined]
        if ops.wreg:
            self._remove_writer(fd)  # type: ignore[attr-defined]

    def _tl_fdops(self, sock: Any, fd: int) -> _FdOps:
        """This module's entry for sock, created (after asyncio's no-transport check) if new.

        An existing entry for the same socket object proves no transport took the fd since it
        was made (a transport calls _tl_forget_fd, which drops the entry), so the check, a
        WeakValueDictionary lookup that raises and catches KeyError (~2-4k instructions), runs
        once per registration instead of once per waiting operation.
        """
        table = self._tl_ops
        if table is None:
            table = self._tl_ops = {}
            hint_allocator()  # sock_recv allocates a bytes of the requested size per call
        ops = table.get(fd)
        if ops is not None and ops.sock is sock:
            return ops
        self._tl_ensure_no_transport(fd)
        if ops is not None:
            # The fd number now belongs to a new socket: the old registration may be stale
            # in the kernel (closing an fd drops it from epoll), so re-register from scratch.
            self._tl_forget_fd(fd)
        ops = table[fd] = _FdOps(sock)
        return ops

    def _tl_on_readable(self, fd: int) -> None:
        table = self._tl_ops
        ops = table.get(fd) if table else None
        if ops is None:
            self._remove_reader(fd)  # type: ignore[attr-defined]
            return
        _run_queue(self, fd, ops, ops.readers)

    def _tl_on_writable(self, fd: int) -> None:
        table = self._tl_ops
        ops = table.get(fd) if table else None
        if ops is None:
            self._remove_writer(fd)  # type: ignore[attr-defined]
            return
        _run_queue(self, fd, ops, ops.writers)

    def _tl_submit(self, sock: Any, write: bool, step: Any, args: tuple[Any, ...]) -> Any:
        """Queue an operation until the fd is ready; the caller awaits the returned future."""
        fd = sock.fileno()
        ops = self._tl_fdops(sock, fd)
        fut = self.create_future()  # type: ignore[attr-defined]
        if write:
            queue = ops.writers
            if not ops.wreg:
                self._add_writer(fd, self._tl_on_writable, fd)  # type: ignore[attr-defined]
                ops.wreg = True
        else:
            queue = ops.readers
            if not ops.rreg:
                self._add_reader(fd, self._tl_on_readable, fd)  # type: ignore[attr-defined]
                ops.rreg = True
        queue.append((fut, step, args))
        return fut

    def _tl_cancelled(self, sock: Any, write: bool, fut: Any) -> None:
        """A waiter was cancelled: forget its operation (and soon the registration)."""
        table = self._tl_ops
        if not table:
            return
        fd = sock.fileno()
        ops = table.get(fd)
        if ops is None or ops.sock is not sock:
            # The socket was closed meanwhile (fileno() is -1): find it by identity.
            for fd, ops in list(table.items()):  # noqa: B007
                if ops.sock is sock:
                    break
            else:
                return
        queue = ops.writers if write else ops.readers
        for entry in queue:
            if entry[0] is fut:
                queue.remove(entry)
                break
        if not queue:
            _schedule_check(self, fd, ops)

    async def _tl_wait(self, sock: Any, write: bool, step: Any, args: tuple[Any, ...]) -> Any:
        fut = self._tl_submit(sock, write, step, args)
        try:
            return await fut
        except exceptions.CancelledError:
            self._tl_cancelled(sock, write, fut)
            raise
        finally:
            fut = None  # break the cycle through the exception's traceback

    def _tl_check_sock(self, sock: Any) -> None:
        # A plain socket.socket cannot be an SSLSocket: skip the (costly) isinstance check.
        if type(sock) is not _SOCKET_TYPE:
            check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    # -- public sock_* ----------------------------------------------------------------------------

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        if type(sock) is not _SOCKET_TYPE:
            self._tl_check_sock(sock)
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
            step: Any = _recv_step
        else:
            # Hot path: recv(2) without raising BlockingIOError when nothing is there yet.
            if self._debug:
                self._tl_check_sock(sock)
            data = try_recv(sock, n)
            if data is not None:
                return data
            step = _try_recv_step
        # Await the future here rather than through another coroutine.
        fut = self._tl_submit(sock, False, step, (sock, n))
        try:
            return await fut  # type: ignore[no-any-return]
        except exceptions.CancelledError:
            self._tl_cancelled(sock, False, fut)
            raise

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        if type(sock) is not _SOCKET_TYPE or self._debug:
            self._tl_check_sock(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self._tl_submit(sock, False, _recv_into_step, (sock, buf))
        try:
            return await fut  # type: ignore[no-any-return]
        except exceptions.CancelledError:
            self._tl_cancelled(sock, False, fut)
            raise

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        self._tl_check_sock(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._tl_wait(sock, False, _recvfrom_step, (sock, bufsize))

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any,
                                 nbytes: int = 0) -> tuple[int, Any]:
        self._tl_check_sock(sock)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._tl_wait(
            sock, False, _recvfrom_into_step, (sock, buf, nbytes))

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        if type(sock) is not _SOCKET_TYPE:
            self._tl_check_sock(sock)
            try:
                n = sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
        else:
            if self._debug:
                self._tl_check_sock(sock)
            n = try_send(sock, data)
        if n == len(data):
            return
        view = memoryview(data)
        if view.itemsize != 1:
            view = view.cast("B")
        pos = [n]
        total = view.nbytes

        def step() -> Any:
            start = pos[0]
            start += sock.send(view[start:])
            if start == total:
                return None
            pos[0] = start
            return _AGAIN

        fut = self._tl_submit(sock, True, step, ())
        try:
            await fut
        except exceptions.CancelledError:
            self._tl_cancelled(sock, True, fut)
            raise

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        self._tl_check_sock(sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._tl_wait(sock, True, _sendto_step, (sock, data, address))

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        self._tl_check_sock(sock)
        if sock.family == socket.AF_INET or (
                socket.has_ipv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(  # type: ignore[attr-defined]
                address, family=sock.family, type=sock.type, proto=sock.proto, loop=self)
            address = resolved[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            # connect() continues in the background: writability reports its outcome.
            pass

        def step() -> None:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                raise OSError(err, f"Connect call failed {address}")

        await self._tl_wait(sock, True, step, ())

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        self._tl_check_sock(sock)
        try:
            return _accept_step(sock)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._tl_wait(sock, False, _accept_step, (sock,))

    # -- sendfile ---------------------------------------------------------------------------------

    def _check_sendfile_params(self, sock: Any, file: Any, offset: Any, count: Any) -> None:
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if not sock.type == socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(f"count must be a positive integer (got {count!r})")
        if not isinstance(offset, int):
            raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
        if offset < 0:
            raise ValueError(f"offset must be a non-negative integer (got {offset!r})")

    async def sock_sendfile(self, sock: socket.socket, file: Any, offset: int = 0,
                            count: int | None = None, *, fallback: bool = True) -> int:
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        check_ssl_socket(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock: Any, file: Any, offset: int,
                                    count: int | None) -> int:
        if not hasattr(os, "sendfile"):
            raise exceptions.SendfileNotAvailableError("os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise exceptions.SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise exceptions.SendfileNotAvailableError("not a regular file")
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        fd = sock.fileno()
        total = 0
        waited = False
        try:
            while True:
                if count:
                    blocksize = count - total
                    if blocksize <= 0:
                        break
                # 32-bit platforms: keep the length representable.
                blocksize = min(blocksize, sys.maxsize // 2 + 1)
                try:
                    sent = os.sendfile(fd, fileno, offset + total, blocksize)
                except (BlockingIOError, InterruptedError):
                    waited = True
                    await self._tl_wait(sock, True, _ready_step, ())
                    continue
                except OSError as exc:
                    if ((waited or total) and exc.errno == errno.ENOTCONN
                            and type(exc) is not ConnectionError):
                        # Peer went away mid-transfer: normalise as asyncio does.
                        new_exc = ConnectionError("socket is not connected", errno.ENOTCONN)
                        new_exc.__cause__ = exc
                        exc = new_exc
                    if total == 0:
                        # Most likely not an mmap-able file: the caller may fall back.
                        err = exceptions.SendfileNotAvailableError("os.sendfile call failed")
                        raise err from None
                    raise exc
                if sent == 0:
                    break
                total += sent
        finally:
            if total > 0:
                os.lseek(fileno, offset + total, os.SEEK_SET)
        return total

    async def _sock_sendfile_fallback(self, sock: Any, file: Any, offset: int,
                                      count: int | None) -> int:
        if offset:
            file.seek(offset)
        size = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
        blocksize = min(count, size) if count else size
        buf = bytearray(blocksize)
        total = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(  # type: ignore[attr-defined]
                    None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total += read
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
