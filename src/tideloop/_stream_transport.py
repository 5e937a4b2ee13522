"""Stream socket transports (TCP and Unix) with asyncio's exact protocol contract.

Invariant: the reader stays registered for as long as the transport reads (only pause, EOF and
close remove it); the writer is registered exactly while the write buffer is non-empty. Each read
hands the protocol a new bytes object of exactly what arrived (compiled: _sockio's recv path;
interpreted: socket.recv, as asyncio).
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import socket
import warnings
from asyncio import constants, protocols, streams, transports, trsock
from typing import TYPE_CHECKING, Any

from . import _compat
from ._sockio import hint_allocator

try:
    import cython
except ImportError:  # pragma: no cover - interpreted without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

if cython.compiled:
    # C calls into _sockio's cpdef functions instead of Python calls through their wrappers.
    from cython.cimports.tideloop._capi import (  # type: ignore[import-not-found]
        call_method_o,
        raise_pending,
    )
    from cython.cimports.tideloop._sockio import (  # type: ignore[import-not-found]
        recv_bytes,
        send_bytes,
    )
    from cython.cimports.tideloop._sockio_sys import (  # type: ignore[import-not-found]
        send_status,
    )
else:
    from ._sockio import recv_bytes, send_bytes

logger = logging.getLogger("asyncio")

# Read size per readiness event, the same as asyncio's max_size.
MAX_READ = 256 * 1024

_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
try:
    IOV_MAX = os.sysconf("SC_IOV_MAX") if _HAS_SENDMSG else 1
except (OSError, ValueError):
    _HAS_SENDMSG = False
    IOV_MAX = 1

_LOG_CONNLOST = constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES
_islice = itertools.islice


def get_read_view(loop: Any) -> memoryview:
    """Return the loop's shared read buffer (all reads happen on the loop's thread).

    Datagram transports read into it; stream transports no longer need it.
    """
    view = getattr(loop, "_tl_read_view", None)
    if view is None:
        hint_allocator()
        view = memoryview(bytearray(MAX_READ))
        loop._tl_read_view = view
    return view


def set_nodelay(sock: socket.socket) -> None:
    if (sock.family in (socket.AF_INET, socket.AF_INET6)
            and sock.type == socket.SOCK_STREAM and sock.proto == socket.IPPROTO_TCP):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _as_bytes_view(view: memoryview) -> Any:
    # Byte offsets must count bytes, not items; a strided view can only be copied.
    return view.cast("B") if view.c_contiguous else view.tobytes()


def _set_result_unless_cancelled(fut: Any, result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


class SocketLifecycle:
    """Write flow control, closing and failing: shared by the stream and datagram transports.

    Expects ``_loop``, ``_sock``, ``_sock_fd``, ``_protocol``, ``_protocol_connected``,
    ``_buffer``, ``_buffer_size``, ``_closing`` and ``_conn_lost`` on the transport.
    """

    if not TYPE_CHECKING:
        # Empty slots keep the subclasses dict-free; hidden from mypy, whose slot check would
        # otherwise pin the attributes annotated below to this class.
        __slots__ = ()
    _loop: Any
    _sock: Any
    _sock_fd: int
    _protocol: Any
    _protocol_connected: bool
    _buffer: Any
    _buffer_size: int
    _closing: bool
    _conn_lost: int
    _protocol_paused: bool
    _high_water: int
    _low_water: int

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.pause_writing() failed",
                "exception": exc, "transport": self, "protocol": self._protocol})

    def _resume_protocol(self) -> None:
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.resume_writing() failed",
                "exception": exc, "transport": self, "protocol": self._protocol})

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._resume_protocol()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop._remove_reader(self._sock_fd)
        if not self._buffer:
            self._conn_lost += 1
            self._loop._remove_writer(self._sock_fd)
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        # OSErrors are the peer's doing (reset, broken pipe): asyncio only logs them in debug.
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message, "exception": exc,
                "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop._remove_writer(self._sock_fd)
        if not self._closing:
            self._closing = True
            self._loop._remove_reader(self._sock_fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._sock.close()
            self._sock = None
            self._protocol = None
            self._loop = None
            self._forget()

    def _forget(self) -> None:
        """Anything a transport must drop once connection_lost has run (override)."""


# The fields the per-event paths (_read_ready, write) read. Compiled, they live in a _StreamCore,
# a C struct behind one slot of the transport (C field reads instead of a type lookup plus a
# member descriptor call, ~100 instructions, per read); the transport forwards the same names to
# it as properties, so every other reader and writer is unchanged. Interpreted, they are the
# transport's own slots and the "core" is the transport itself.
_CORE_FIELDS = ("_sock_fd", "_protocol", "_stream_fast", "_conn_lost", "_buffer", "_eof",
                "_empty_waiter")


@cython.final
@cython.cclass
class _StreamCore:
    """The hot state of one compiled SocketTransport (see _CORE_FIELDS); typed in the .pxd."""

    def __init__(self) -> None:
        self._sock_fd = -1
        self._protocol = None
        self._stream_fast = False
        self._conn_lost = 0
        self._buffer = None
        self._eof = False
        self._empty_waiter = None


def _core_field(name: str) -> property:
    def get(self: Any) -> Any:
        return getattr(self._core, name)

    def set(self: Any, value: Any) -> None:
        setattr(self._core, name, value)

    return property(get, set)


def _core_of(transport: Any) -> Any:
    """The object holding the transport's _CORE_FIELDS: its _StreamCore, or itself interpreted."""
    if cython.compiled:
        return cython.cast(_StreamCore, tl_slot_get(  # type: ignore[name-defined]  # noqa: F821
            transport, _fast_type, _core_offset, "_core"))  # noqa: F821
    return transport


class SocketTransport(SocketLifecycle, transports._FlowControlMixin):
    """A connected SOCK_STREAM socket driven by the loop's reactor."""

    # Slots, not a __dict__: attribute reads on the hot paths skip the instance-dict lookup.
    __slots__ = (
        "__weakref__", "_sock", "_recv_into", "_send",
        "_protocol_connected", "_buffered", "_buffer_size",
        "_closing", "_paused", "_server", "_reader_started",
    ) + (("_core",) if cython.compiled else _CORE_FIELDS)
    if cython.compiled and not TYPE_CHECKING:  # mypy sees the fields as the attributes below
        _sock_fd = _core_field("_sock_fd")
        _protocol = _core_field("_protocol")
        _stream_fast = _core_field("_stream_fast")
        _conn_lost = _core_field("_conn_lost")
        _buffer = _core_field("_buffer")
        _eof = _core_field("_eof")
        _empty_waiter = _core_field("_empty_waiter")
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    # Set by _FlowControlMixin/BaseTransport; declared for the type checker.
    _loop: Any
    _extra: Any
    _protocol_paused: bool
    _high_water: int
    _low_water: int

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any, waiter: Any = None,
                 extra: dict[str, Any] | None = None, server: Any = None) -> None:
        if cython.compiled:
            self._core = _StreamCore()
        super().__init__(extra, loop)
        self._extra["socket"] = trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._sock: Any = sock
        self._sock_fd = sock.fileno()
        # Bound once: the hot paths call these per event.
        self._recv_into = sock.recv_into
        self._send = sock.send
        self._protocol: Any = None
        self._protocol_connected = False
        self._buffered = False
        hint_allocator()  # before the first read: see _sockio
        self._buffer: collections.deque[Any] = collections.deque()
        self._buffer_size = 0
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        self._eof = False
        self._empty_waiter: Any = None
        self._server = server
        self._reader_started = False
        self.set_protocol(protocol)
        purge = getattr(loop, "_tl_forget_fd", None)
        if purge is not None:
            purge(self._sock_fd)
        loop._transports[self._sock_fd] = self
        if server is not None:
            server._attach(self)
        set_nodelay(sock)
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def __repr__(self) -> str:
        info = [self.__class__.__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if self._sock is not None and not self._closing:
            info.append("read=" + ("paused" if self._paused else "polling"))
            state = "polling" if self._buffer else "idle"
            info.append(f"write=<{state}, bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_sock", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()
            server = getattr(self, "_server", None)
            if server is not None:
                server._detach(self)
                self._server = None

    # -- protocol -------------------------------------------------------------------------

    def set_protocol(self, protocol: Any) -> None:
        buffered = isinstance(protocol, protocols.BufferedProtocol)
        self._buffered = buffered
        self._stream_fast = _is_plain_stream_protocol(protocol)
        self._protocol = protocol
        self._protocol_connected = True
        # Swap the registered callback in place; the interest mask is unchanged.
        if self._sock is not None and not self._closing and not self._paused \
                and self._loop is not None and self._reader_started:
            self._watch_reads()

    def get_protocol(self) -> Any:
        return self._protocol

    def _start_reading(self) -> None:
        self._reader_started = True
        if self._closing or self._paused:
            return
        self._watch_reads()

    def is_closing(self) -> bool:
        # StreamWriter.drain() asks on every call: compiled, read the slot at its offset.
        if cython.compiled:
            return tl_slot_get(  # type: ignore[no-any-return,name-defined]  # noqa: F821
                self, _fast_type, _closing_offset, "_closing")
        return self._closing

    def _watch_reads(self) -> None:
        """Register (or swap in) the reader callback for the current protocol."""
        if self._buffered:
            self._loop._add_reader(self._sock_fd, self._read_ready_buffered)
        else:
            core = self._core if cython.compiled else self
            self._loop._add_reader(self._sock_fd, _read_event, core, self)

    # -- reading ----------------------------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop._remove_reader(self._sock_fd)
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._reader_started:
            self._watch_reads()
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def _read_ready(self) -> None:
        _read_event(_core_of(self) if cython.compiled else self, self)

    def _read_ready_buffered(self) -> None:
        if self._conn_lost:
            return
        try:
            buf = self._protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            n = self._recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not n:
            self._read_eof()
            return
        try:
            self._protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _read_eof(self) -> None:
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Half-close: the protocol may still write, but nothing more can arrive.
            self._loop._remove_reader(self._sock_fd)
        else:
            self.close()

    # -- writing ----------------------------------------------------------------------------

    @cython.locals(core=_StreamCore, n=cython.Py_ssize_t, size=cython.Py_ssize_t, raw=bytes)
    def write(self, data: Any) -> None:
        # Exact bytes (nearly every write) has its length in the object: taken once, it answers
        # both "empty?" and "all sent?" without the generic truth test and len() calls (~70
        # instructions, compiled). Other types keep asyncio's own tests, in its order.
        if type(data) is bytes:
            raw = data
            size = len(raw)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            size = -1
        else:
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        core = _core_of(self) if cython.compiled else self  # interpreted: no call
        if core._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if core._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not size or (size < 0 and not data):
            return
        if core._conn_lost:
            if core._conn_lost >= _LOG_CONNLOST:
                logger.warning("socket.send() raised exception.")
            core._conn_lost += 1
            return
        if size < 0:
            if type(data) is memoryview and (data.format != "B" or data.ndim != 1):
                data = _as_bytes_view(data)
            size = len(data)
        if not core._buffer:
            if cython.compiled and type(data) is bytes:
                # The common case with no try block on the way (see send_status).
                n = send_status(core._sock_fd, data)
                if n < 0:
                    _fatal_pending(self, "Fatal write error on socket transport")
                    return
            else:
                try:
                    if cython.compiled:
                        n = send_bytes(self._sock, core._sock_fd, data)
                    else:
                        n = self._send(data)  # interpreted: the bound socket method, one C call
                except (BlockingIOError, InterruptedError):
                    n = 0
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, "Fatal write error on socket transport")
                    return
            if n == size:
                return
            self._loop._add_writer(core._sock_fd, self._write_ready)
            self._queue(data, n, size)
        else:
            self._queue(data, 0, size)
        self._maybe_pause_protocol()

    def _queue(self, data: Any, start: int, size: int) -> None:
        # Keep a view only on immutable data: the caller may reuse a bytearray.
        if type(data) is bytes:
            self._buffer.append(memoryview(data)[start:] if start else data)
        elif start:
            self._buffer.append(bytes(data[start:]))
        else:
            self._buffer.append(bytes(data))
        self._buffer_size += size - start

    def writelines(self, list_of_data: Any) -> None:
        if self._eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to writelines; sendfile is in progress")
        if self._conn_lost:
            if list_of_data:
                self.write(b"".join(list_of_data))
            return
        was_empty = not self._buffer
        for data in list_of_data:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data argument must be a bytes-like object, "
                                f"not {type(data).__name__!r}")
            if type(data) is memoryview and (data.format != "B" or data.ndim != 1):
                data = _as_bytes_view(data)
            if len(data):
                self._queue(data, 0, len(data))
        if not self._buffer:
            return
        if was_empty:
            self._flush()
            if self._conn_lost:
                return
            if self._buffer:
                self._loop._add_writer(self._sock_fd, self._write_ready)
        self._maybe_pause_protocol()

    def _flush(self) -> bool:
        """Send as much of the buffer as the kernel takes; False after a fatal error."""
        buf = self._buffer
        try:
            if len(buf) == 1 or not _HAS_SENDMSG:
                n = self._send(buf[0])
            else:
                n = self._sock.sendmsg(_islice(buf, IOV_MAX))
        except (BlockingIOError, InterruptedError):
            return True
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop._remove_writer(self._sock_fd)
            buf.clear()
            self._buffer_size = 0
            self._fatal_error(exc, "Fatal write error on socket transport")
            if self._empty_waiter is not None:
                self._empty_waiter.set_exception(exc)
            return False
        self._buffer_size -= n
        while n:
            first = buf[0]
            size = len(first)
            if size <= n:
                buf.popleft()
                n -= size
            else:
                buf[0] = memoryview(first)[n:]
                break
        return True

    def _write_ready(self) -> None:
        if self._conn_lost or not self._buffer:
            return
        if not self._flush():
            return
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._resume_protocol()  # may append to the buffer
        if not self._buffer:
            self._loop._remove_writer(self._sock_fd)
            if self._empty_waiter is not None:
                self._empty_waiter.set_result(None)
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._sock.shutdown(socket.SHUT_WR)

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._sock.shutdown(socket.SHUT_WR)

    def can_write_eof(self) -> bool:
        return True

    # -- flow control ------------------------------------------------------------------------

    # -- closing ------------------------------------------------------------------------------

    def _forget(self) -> None:
        # After connection_lost: leave the server's list, fail a pending sendfile waiter.
        server = self._server
        if server is not None:
            server._detach(self)
            self._server = None
        if self._empty_waiter is not None and not self._empty_waiter.done():
            self._empty_waiter.set_exception(ConnectionError("Connection is closed by peer"))

    # -- sendfile support (used by the loop's sendfile) ----------------------------------------

    def _make_empty_waiter(self) -> Any:
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._buffer:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None


if cython.compiled:
    _core_offset = tl_slot_offset(  # type: ignore[name-defined]  # noqa: F821
        SocketTransport.__dict__["_core"])
    _closing_offset = tl_slot_offset(  # type: ignore[name-defined]  # noqa: F821
        SocketTransport.__dict__["_closing"])
    _fast_type = SocketTransport


def _read_event(core: Any, transport: Any) -> None:
    """The reader callback of a transport with a plain (not buffered) protocol.

    Registered as the function itself with (core, transport) as its arguments, not as a bound
    method: compiled, the handle then calls a cpdef function's wrapper directly (no bound method
    layer, no fetch of the core), and the transport stays alive through the handle's arguments
    exactly as it did through the bound method. ``core`` is the transport itself interpreted.
    """
    if core._conn_lost:
        return
    try:
        if cython.compiled:
            # Compiled, recv_bytes reads by fd alone.
            data = recv_bytes(None, core._sock_fd, None)
        else:
            # Interpreted, one C call is cheapest (asyncio's own read; the 256 KiB buffer is
            # malloc'd from the heap since hint_allocator, and shrunk in place).
            data = transport._sock.recv(MAX_READ)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        transport._fatal_error(exc, "Fatal read error on socket transport")
        return
    if not data:
        transport._read_eof()
        return
    if cython.compiled and not core._stream_fast:
        # The plain-protocol call as a status (no try block on the way): errors take
        # _fatal_pending, which does what the except clauses below do.
        if call_method_o(core._protocol, "data_received", data) < 0:
            _fatal_pending(transport, "Fatal error: protocol.data_received() call failed.")
        return
    try:
        if core._stream_fast:
            _feed_stream_reader(core._protocol, data)
        else:
            core._protocol.data_received(data)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        transport._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")


def _fatal_pending(transport: Any, message: str) -> None:
    """Compiled: the except clauses of write and _read_event, for the exception a
    status-returning C helper (send_status, call_method_o) left pending."""
    try:
        raise_pending()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        transport._fatal_error(exc, message)


# Streams fast path. asyncio.start_server/open_connection put a StreamReaderProtocol on the
# transport, whose data_received reaches StreamReader.feed_data through four Python frames
# (data_received, the _stream_reader property, feed_data, _wakeup_waiter) for every chunk. For
# exactly those classes, with those methods as the stdlib defines them (identical in 3.11-3.13),
# the transport does the same state changes itself, in the same order: the reader and
# everything that awaits it see no difference. Subclasses, replaced methods and a reader at EOF
# (feed_data's assertion) take the ordinary path.
# The names it relies on, and the versions they were checked on, are in _compat.
def _stdlib_methods() -> tuple[Any, ...]:
    srp, reader = streams.StreamReaderProtocol, streams.StreamReader
    return (srp.data_received, reader.feed_data, getattr(reader, "_wakeup_waiter", None))


_STDLIB_METHODS = _stdlib_methods()
_STREAM_READER: Any = streams.StreamReader  # Any: its private fields are used below


def _is_plain_stream_protocol(protocol: Any) -> bool:
    return (_compat.STREAM_FAST_PATH
            and type(protocol) is streams.StreamReaderProtocol
            and _stdlib_methods() == _STDLIB_METHODS)


def _feed_stream_reader(protocol: Any, data: bytes) -> None:
    """StreamReaderProtocol.data_received(data) for a plain protocol and reader (data != b"")."""
    ref = protocol._stream_reader_wr
    if ref is None:
        return
    reader: Any = ref()
    if reader is None:
        return
    if type(reader) is not _STREAM_READER or reader._eof:
        reader.feed_data(data)
        return
    buffer = reader._buffer
    buffer.extend(data)
    waiter = reader._waiter
    if waiter is not None:
        reader._waiter = None
        if not waiter.cancelled():
            waiter.set_result(None)
    # The size test first (feed_data tests it last): it is the one that is nearly always false,
    # so the common case reads one attribute of the reader here instead of three.
    if (len(buffer) > 2 * reader._limit and reader._transport is not None
            and not reader._paused):
        try:
            reader._transport.pause_reading()
        except NotImplementedError:
            reader._transport = None
        else:
            reader._paused = True
