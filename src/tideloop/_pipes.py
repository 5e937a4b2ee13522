"""Pipe transports for connect_read_pipe / connect_write_pipe: pipes, FIFOs, sockets, ttys.

Invariant: a pipe transport owns its pipe object until ``connection_lost`` has run; the reader stays
registered while reading (sticky, removed only on pause, EOF or close) and the writer is registered
exactly while the write buffer is non-empty.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import sys
import warnings
from asyncio.log import logger
from typing import Any

__all__ = ["ReadPipeTransport", "WritePipeTransport"]

# asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES (5 on 3.11-3.13): writes after the pipe
# was lost are dropped silently this many times before a warning is logged.
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

# os.read(fd, 256 KiB) asks malloc for 256 KiB on every call; above glibc's mmap threshold that is
# an mmap + mremap + munmap per read (~30 us, measured here) even when 100 bytes arrive. Reading
# into one preallocated buffer with readv and copying out only what arrived costs ~4 us.
_READ_SIZE = 256 * 1024

# Below this a leftover is copied into the write buffer (cheap, and it coalesces small writes);
# above it a leftover of an immutable bytes object is kept as a view instead (64 MiB handed to
# communicate() would otherwise be copied once more, page faults included: ~55 ms measured).
_ZERO_COPY_MIN = 256 * 1024


def _shared_read_buffer(loop: Any) -> bytearray:
    """One read buffer per loop: callbacks of a loop run one at a time, and every reader copies
    out what it read before calling the protocol, so all pipe transports of a loop can share it
    (200 children with two pipes each would otherwise pin 100 MiB)."""
    buf = getattr(loop, "_tl_pipe_read_buffer", None)
    if buf is None:
        buf = bytearray(_READ_SIZE)
        try:
            loop._tl_pipe_read_buffer = buf
        except AttributeError:  # a loop class with __slots__: fall back to a private buffer
            pass
    return buf


def _set_result_unless_cancelled(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


class ReadPipeTransport(asyncio.ReadTransport):
    """Read side of a pipe, FIFO, socket or character device (e.g. a pty master)."""

    max_size = _READ_SIZE  # upper bound of bytes read per readiness event (asyncio's value)

    def __init__(
        self,
        loop: Any,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__({**extra, "pipe": pipe} if extra else {"pipe": pipe})
        self._loop: Any = loop
        self._pipe: Any = pipe
        self._fileno: Any = pipe.fileno()
        self._protocol: Any = protocol
        self._closing = False
        self._paused = False
        self._polling = False

        mode = os.fstat(self._fileno).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            self._pipe = None
            self._fileno = None
            self._protocol = None
            raise ValueError("Pipe transport is for pipes/sockets only.")

        buf = _shared_read_buffer(loop)
        self._rbufs = (buf,)
        self._rview = memoryview(buf)
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

        os.set_blocking(self._fileno, False)

        loop.call_soon(protocol.connection_made, self)
        # Start reading only once connection_made() has run, so no data precedes it.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def _start_reading(self) -> None:
        if not self.is_reading():
            return
        self._loop._add_reader(self._fileno, self._read_ready)
        self._polling = True

    def _stop_polling(self) -> None:
        if self._polling:
            self._polling = False
            self._loop._remove_reader(self._fileno)

    def __repr__(self) -> str:
        info = [self.__class__.__name__]
        if self._pipe is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fileno}")
        if self._pipe is not None and self._loop is not None and not self._loop.is_closed():
            info.append("polling" if self._polling else "idle")
        elif self._pipe is not None:
            info.append("open")
        else:
            info.append("closed")
        return "<{}>".format(" ".join(info))

    def _read_ready(self) -> None:
        if self._buffered:
            self._read_ready_buffered()
            return
        try:
            n = os.readv(self._fileno, self._rbufs)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if n:
            self._protocol.data_received(bytes(self._rview[:n]))
        else:
            self._eof()

    def _read_ready_buffered(self) -> None:
        # BufferedProtocol: read straight into the protocol's buffer (asyncio's pipe transport
        # only speaks data_received; accepting both is a strict superset).
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
            n = os.readv(self._fileno, (buf,))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if not n:
            self._eof()
            return
        try:
            self._protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _eof(self) -> None:
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._stop_polling()
        self._loop.call_soon(self._protocol.eof_received)
        self._loop.call_soon(self._call_connection_lost, None)

    def pause_reading(self) -> None:
        if not self.is_reading():
            return
        self._paused = True
        self._stop_polling()
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop._add_reader(self._fileno, self._read_ready)
        self._polling = True
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    def _fatal_error(
        self, exc: BaseException, message: str = "Fatal error on pipe transport"
    ) -> None:
        # EIO is how a pty master reports that the slave side was closed: an EOF, not an error.
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        self._closing = True
        self._stop_polling()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None


class WritePipeTransport(asyncio.WriteTransport):
    """Write side of a pipe, FIFO, socket or character device, with asyncio's flow control."""

    def __init__(
        self,
        loop: Any,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__({**extra, "pipe": pipe} if extra else {"pipe": pipe})
        self._loop: Any = loop
        self._pipe: Any = pipe
        self._fileno: Any = pipe.fileno()
        self._protocol: Any = protocol
        self._buffer = bytearray()
        # A large bytes object the kernel did not take at once is kept as a view, not copied:
        # it is immutable, so it cannot change under us. Always written before _buffer.
        self._head: memoryview | None = None
        self._conn_lost = 0
        self._closing = False  # set by close() / write_eof() / abort() / a fatal error
        self._writing = False  # the writer callback is registered
        self._watching = False  # the reader that notices the peer's close is registered
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024

        mode = os.fstat(self._fileno).st_mode
        is_char = stat.S_ISCHR(mode)
        is_fifo = stat.S_ISFIFO(mode)
        is_socket = stat.S_ISSOCK(mode)
        if not (is_char or is_fifo or is_socket):
            self._pipe = None
            self._fileno = None
            self._protocol = None
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")

        os.set_blocking(self._fileno, False)
        loop.call_soon(protocol.connection_made, self)

        # The write end of a pipe or socket polls readable (POLLERR/POLLHUP) once the reader is
        # gone: watching it tells us the peer closed without having to write. Character devices
        # poll readable when input arrives, so they are not watched; AIX only reports this for
        # sockets.
        if is_socket or (is_fifo and not sys.platform.startswith("aix")):
            loop.call_soon(self._start_watching)

        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def _start_watching(self) -> None:
        if self._pipe is None or self._loop is None:
            return
        if self._closing and not self.get_write_buffer_size():
            return
        self._loop._add_reader(self._fileno, self._read_ready)
        self._watching = True

    def _stop_watching(self) -> None:
        if self._watching:
            self._watching = False
            self._loop._remove_reader(self._fileno)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop._remove_writer(self._fileno)

    def __repr__(self) -> str:
        info = [self.__class__.__name__]
        if self._pipe is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fileno}")
        if self._pipe is not None and self._loop is not None and not self._loop.is_closed():
            info.append("polling" if self._writing else "idle")
            info.append(f"bufsize={self.get_write_buffer_size()}")
        elif self._pipe is not None:
            info.append("open")
        else:
            info.append("closed")
        return "<{}>".format(" ".join(info))

    # -- flow control (same defaults and semantics as asyncio's transports) --

    def get_write_buffer_size(self) -> int:
        head = self._head
        return len(self._buffer) if head is None else len(head) + len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "protocol.pause_writing() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or self.get_write_buffer_size() > self._low_water:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "protocol.resume_writing() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    # -- I/O --

    def _read_ready(self) -> None:
        # The peer closed its end: data still buffered can never be delivered.
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        if self.get_write_buffer_size():
            self._close(BrokenPipeError())
        else:
            self._close()

    def write(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return

        if self._head is None and not self._buffer:
            # Nothing queued: try the kernel first, most writes complete here.
            try:
                n = os.write(self._fileno, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if n == len(data):
                return
            self._loop._add_writer(self._fileno, self._write_ready)
            self._writing = True
            if type(data) is bytes and len(data) - n >= _ZERO_COPY_MIN:
                self._head = memoryview(data)[n:]
                self._maybe_pause_protocol()
                return
            if n > 0:
                data = memoryview(data)[n:]

        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        head = self._head
        pending = self._buffer if head is None else head
        if not pending:  # a stale event after abort()
            self._stop_writing()
            return
        try:
            n = os.write(self._fileno, pending)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._head = None
            self._buffer.clear()
            self._conn_lost += 1
            self._stop_writing()
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if head is not None:
            self._head = head[n:] if n < len(head) else None
            if self._head is not None or self._buffer:
                self._maybe_resume_protocol()
                return
        elif n < len(self._buffer):
            del self._buffer[:n]  # cheap: bytearray drops a prefix without moving the rest
            return
        else:
            self._buffer.clear()
        # drained
        self._stop_writing()
        self._maybe_resume_protocol()  # may write again
        if self._closing and not self.get_write_buffer_size():
            self._stop_watching()
            self._call_connection_lost(None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing:
            return
        assert self._pipe
        self._closing = True
        if not self.get_write_buffer_size():
            self._stop_watching()
            self._loop.call_soon(self._call_connection_lost, None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._pipe is not None and not self._closing:
            # closing a write pipe is write_eof(): flush, then drop the pipe
            self.write_eof()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    def abort(self) -> None:
        self._close(None)

    def _fatal_error(
        self, exc: BaseException, message: str = "Fatal error on pipe transport"
    ) -> None:
        # OSErrors (EPIPE, ...) are the peer going away, reported via connection_lost(exc).
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._close(exc)

    def _close(self, exc: BaseException | None = None) -> None:
        self._closing = True
        self._stop_writing()
        self._head = None
        self._buffer.clear()
        self._stop_watching()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._pipe is None:  # already lost (e.g. abort() after the buffer drained)
            return
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None
