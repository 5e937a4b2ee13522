"""Datagram (UDP and Unix SOCK_DGRAM) transport with asyncio's protocol contract.

Invariant: the reader stays registered while reading; the writer is registered exactly while
datagrams wait in the send queue. OSErrors from send/recv go to ``error_received`` and never
close the transport; anything else is fatal.
"""

from __future__ import annotations

import collections
import logging
import sys
import warnings
from asyncio import constants, transports, trsock
from typing import Any

from ._stream_transport import SocketLifecycle, _set_result_unless_cancelled, get_read_view

logger = logging.getLogger("asyncio")

_PY313 = sys.version_info >= (3, 13)
# 3.13 counts an 8-byte header per queued datagram and sends empty datagrams.
_HEADER = 8 if _PY313 else 0


class DatagramTransport(SocketLifecycle, transports._FlowControlMixin,
                        transports.DatagramTransport):
    __slots__ = (
        "__weakref__", "_sock", "_sock_fd", "_protocol", "_protocol_connected", "_address",
        "_buffer", "_buffer_size", "_conn_lost", "_closing", "_paused", "_started", "_rview",
    )
    _loop: Any
    _extra: Any
    _protocol_paused: bool
    _high_water: int
    _low_water: int
    def __init__(self, loop: Any, sock: Any, protocol: Any, address: Any = None,
                 waiter: Any = None, extra: dict[str, Any] | None = None) -> None:
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
        self._protocol: Any = protocol
        self._protocol_connected = True
        self._address = address
        self._buffer: collections.deque[Any] = collections.deque()
        self._buffer_size = 0
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        self._started = False
        self._rview = get_read_view(loop)
        purge = getattr(loop, "_tl_forget_fd", None)
        if purge is not None:
            purge(self._sock_fd)
        loop._transports[self._sock_fd] = self
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else ("closing" if self._closing else "open")
        return f"<{self.__class__.__name__} fd={self._sock_fd} {state}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_sock", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self) -> Any:
        return self._protocol

    def _start_reading(self) -> None:
        self._started = True
        if not self._closing and not self._paused:
            self._loop._add_reader(self._sock_fd, self._read_ready)

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop._remove_reader(self._sock_fd)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._started:
            self._loop._add_reader(self._sock_fd, self._read_ready)

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        try:
            n, addr = self._sock.recvfrom_into(self._rview)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
            return
        self._protocol.datagram_received(self._rview[:n].tobytes(), addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if not _PY313 and not data:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and self._address:
            if self._conn_lost >= constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                if self._extra["peername"]:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop._add_writer(self._sock_fd, self._sendto_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram socket connection")
                return
        data = bytes(data)  # the caller may reuse its buffer
        self._buffer.append((data, addr))
        self._buffer_size += len(data) + _HEADER
        self._maybe_pause_protocol()

    def _sendto_ready(self) -> None:
        while self._buffer:
            data, addr = self._buffer.popleft()
            self._buffer_size -= len(data) + _HEADER
            try:
                if self._extra["peername"]:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._buffer.appendleft((data, addr))
                self._buffer_size += len(data) + _HEADER
                break
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram socket connection")
                return
        self._maybe_resume_protocol()
        if not self._buffer:
            self._loop._remove_writer(self._sock_fd)
            if self._closing:
                self._call_connection_lost(None)
