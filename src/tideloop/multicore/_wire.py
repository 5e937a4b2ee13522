"""Message framing over a pair of pipes, driven by an event loop's reader/writer callbacks.

Invariant: a frame is a 4-byte little-endian length and one pickle of a list of message tuples;
``Channel.send`` never blocks (it buffers and arms the writer only while bytes are pending) and the
reader hands over whole frames only, in order; EOF or a read error is reported exactly once.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any

from ._common import PICKLE_PROTOCOL

_HEADER = struct.Struct("<I")
_HLEN = _HEADER.size
# Below glibc's mmap threshold (128 KiB), so each read is a cheap heap allocation.
_READ_SIZE = 65536

# parent -> worker
CALL = 1  # (CALL, item_id, fn_bytes, args_bytes, star)
CANCEL = 2  # (CANCEL, item_id)
STOP = 3  # (STOP,)
# worker -> parent
READY = 10  # (READY, pid)
OK = 11  # (OK, item_id, result_bytes)
ERR = 12  # (ERR, item_id, ErrorBlob)
CANCELLED = 13  # (CANCELLED, item_id)
INIT_ERROR = 14  # (INIT_ERROR, ErrorBlob)
RETIRE = 15  # (RETIRE,) the worker reached max_tasks_per_worker and leaves once idle
DONE = 16  # (DONE, ok: bool, bytes | ErrorBlob) a run_workers main returned / raised

# How `args_bytes` of a CALL unpacks: one positional argument, a tuple of them, or (args, kwargs).
STAR_ONE = 0
STAR_ARGS = 1
STAR_KW = 2


def encode_frame(messages: list[Any]) -> bytes:
    payload = pickle.dumps(messages, PICKLE_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def write_frame_blocking(fd: int, messages: list[Any]) -> None:
    """Used only before a loop exists (bootstrap) and on a blocking fd."""
    data = memoryview(encode_frame(messages))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_frame_blocking(fd: int) -> list[Any] | None:
    """Read one whole frame from a blocking fd; None on EOF."""
    buf = bytearray()
    need = _HLEN
    header_done = False
    while True:
        while len(buf) < need:
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                return None
            buf += chunk
        if header_done:
            return pickle.loads(buf[_HLEN:])  # type: ignore[no-any-return]
        (length,) = _HEADER.unpack_from(buf)
        need = _HLEN + length
        header_done = True


class Channel:
    """Full-duplex framed messaging over two non-blocking pipe fds watched by ``loop``.

    ``on_messages(list)`` gets each decoded frame's messages; ``on_eof(exc_or_None)`` is called once
    when the peer closes its end or the read fails. The channel owns both fds.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rfd: int,
        wfd: int,
        on_messages: Callable[[list[Any]], None],
        on_eof: Callable[[BaseException | None], None],
    ) -> None:
        self._loop = loop
        self._rfd = rfd
        self._wfd = wfd
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self._on_messages = on_messages
        self._on_eof = on_eof
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._writing = False
        self._reading = True
        self._write_broken = False
        self.closed = False
        loop.add_reader(rfd, self._read_ready)

    # -- reading -------------------------------------------------------------------------------
    def _read_ready(self) -> None:
        try:
            data = os.read(self._rfd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._eof(exc)
            return
        if not data:
            self._eof(None)
            return
        self._feed(data)

    def drain(self) -> None:
        """Read whatever the peer left in the pipe (it is dead); then report EOF if not yet done."""
        while self._reading:
            try:
                data = os.read(self._rfd, _READ_SIZE)
            except (BlockingIOError, InterruptedError):
                # A grandchild may still hold the write end; the worker itself is gone.
                self._eof(None)
                return
            except OSError as exc:
                self._eof(exc)
                return
            if not data:
                self._eof(None)
                return
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        buf = self._rbuf
        if not buf and len(data) >= _HLEN:
            # Fast path: the common case is one or more whole frames in one read.
            mv = memoryview(data)
            pos = 0
            end = len(data)
            while end - pos >= _HLEN:
                (length,) = _HEADER.unpack_from(mv, pos)
                stop = pos + _HLEN + length
                if stop > end:
                    break
                self._deliver(mv[pos + _HLEN : stop])
                if not self._reading:
                    return
                pos = stop
            if pos < end:
                buf += mv[pos:]
            return
        buf += data
        while len(buf) >= _HLEN:
            (length,) = _HEADER.unpack_from(buf)
            stop = _HLEN + length
            if len(buf) < stop:
                break
            frame = bytes(buf[_HLEN:stop])
            del buf[:stop]
            self._deliver(frame)
            if not self._reading:
                return

    def _deliver(self, frame: bytes | memoryview) -> None:
        try:
            messages = pickle.loads(frame)
        except Exception as exc:  # a corrupt stream is as good as a dead peer
            self._eof(exc)
            return
        self._on_messages(messages)

    def _eof(self, exc: BaseException | None) -> None:
        if not self._reading:
            return
        self._reading = False
        self._loop.remove_reader(self._rfd)
        self._on_eof(exc)

    # -- writing -------------------------------------------------------------------------------
    def send(self, messages: list[Any]) -> bool:
        """Queue one frame. False means the peer provably never got any of it (the pipe was
        already broken), so its contents may be safely sent elsewhere."""
        if self.closed or self._write_broken:
            return False
        return self.send_bytes(encode_frame(messages))

    def send_bytes(self, data: bytes) -> bool:
        if self.closed or self._write_broken:
            return False
        if self._wbuf:
            self._wbuf += data
            return True
        try:
            n = os.write(self._wfd, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._broken(exc)
            return False
        if n < len(data):
            self._wbuf += memoryview(data)[n:]
            if not self._writing:
                self._writing = True
                self._loop.add_writer(self._wfd, self._write_ready)
        return True

    def _write_ready(self) -> None:
        try:
            n = os.write(self._wfd, self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broken(exc)
            return
        del self._wbuf[:n]
        if not self._wbuf:
            self._writing = False
            self._loop.remove_writer(self._wfd)

    def _broken(self, exc: OSError) -> None:
        # EPIPE: the peer is gone. The read side sees EOF (or the pidfd fires) and reports it.
        self._write_broken = True
        self._wbuf.clear()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._wfd)

    def flush_blocking(self) -> None:
        """Write out what is buffered, blocking (used once a process is about to exit)."""
        if self.closed or self._write_broken or not self._wbuf:
            return
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._wfd)
        os.set_blocking(self._wfd, True)
        try:
            data = memoryview(bytes(self._wbuf))
            self._wbuf.clear()
            while data:
                n = os.write(self._wfd, data)
                data = data[n:]
        except OSError:
            self._write_broken = True
        finally:
            os.set_blocking(self._wfd, False)

    @property
    def write_pending(self) -> int:
        return len(self._wbuf)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._rfd)
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._wfd)
        self._wbuf.clear()
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass
