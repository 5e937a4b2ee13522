"""epoll reactor (Linux): level-triggered, one kernel registration per fd.

Invariant: the interest mask the kernel holds equals what the loop core last asked for; closed fds
vanish from the epoll set on their own, so unregistering one is silently accepted. Compiled, the
core waits through ``wait()``, which calls epoll_wait(2) into a C array with the GIL released.
"""

from __future__ import annotations

import os
import select
from typing import Any

from ._reactor import READ, WRITE, timeout_ms

try:
    import cython
except ImportError:  # pragma: no cover - interpreted without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.cpython.exc import PyErr_CheckSignals  # type: ignore[import-not-found]
    from cython.cimports.libc.errno import EINTR, errno  # type: ignore[import-not-found]
    from cython.cimports.tideloop._capi import c_monotonic  # type: ignore[import-not-found]
    from cython.cimports.tideloop._epoll_sys import (  # type: ignore[import-not-found]
        EPOLLIN,
        EPOLLOUT,
        epoll_wait,
    )


def _timeout_ms_c(timeout: float) -> int:
    """_reactor.timeout_ms (seconds to milliseconds, rounded up) as a C function (compiled only)."""
    if timeout < 0:
        return -1
    ms = cython.cast(cython.int, timeout * 1000.0)
    if ms < timeout * 1000.0:
        ms += 1
    return ms  # type: ignore[no-any-return]


_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT


def _to_epoll(events: int) -> int:
    mask = 0
    if events & READ:
        mask |= _EPOLLIN
    if events & WRITE:
        mask |= _EPOLLOUT
    return mask


class EpollReactor:
    _events: Any  # compiled: a C array of struct epoll_event (see _epoll.pxd)

    def __init__(self) -> None:
        self._epoll = select.epoll()  # close-on-exec by default since Python 3.4
        self._epfd = self._epoll.fileno()
        self.name = "epoll"

    def fileno(self) -> int:
        return self._epoll.fileno()

    def register(self, fd: int, events: int) -> None:
        try:
            self._epoll.register(fd, _to_epoll(events))
        except FileExistsError:
            # The fd number was closed and reused behind the loop's back while the kernel
            # kept the old registration (a dup of it is still open): take over the entry.
            self._epoll.modify(fd, _to_epoll(events))

    def modify(self, fd: int, events: int) -> None:
        try:
            self._epoll.modify(fd, _to_epoll(events))
        except FileNotFoundError:
            # Closed and reopened under the same number: the kernel dropped the old entry.
            self._epoll.register(fd, _to_epoll(events))

    def unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except OSError:
            pass  # already gone with the close of the fd

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        # Python's epoll.poll retries on EINTR itself (PEP 475) after running signal
        # handlers, and a handler that must wake us writes to the loop's self-pipe.
        if timeout == 0.0:  # a busy loop's poll, or (< 0) one with no timer: nothing to round
            raw = self._epoll.poll(0)
        elif timeout < 0.0:
            raw = self._epoll.poll(-1)
        else:
            raw = self._epoll.poll(timeout_ms(timeout) / 1000.0)
        if not raw:
            return raw
        out = []
        for fd, ev in raw:
            # Anything but plain EPOLLOUT (EPOLLIN, EPOLLERR, EPOLLHUP, EPOLLRDHUP) wakes the
            # reader; anything but plain EPOLLIN wakes the writer (as selectors does).
            mask = 0
            if ev & ~_EPOLLOUT:
                mask |= READ
            if ev & ~_EPOLLIN:
                mask |= WRITE
            out.append((fd, mask))
        return out

    def close(self) -> None:
        self._epoll.close()
        self._epfd = -1

    # -- the compiled core's path: no Python objects per event --------------------------------

    def wait(self, timeout: float) -> int:
        """Wait like poll() but keep the events in C; the count, read with ready_fd/ready_mask."""
        if not cython.compiled:
            raise NotImplementedError("wait() is the compiled core's path; use poll()")
        # The rounding and the deadline in C: this runs on every loop iteration that polls, and
        # the Python calls of timeout_ms and time.monotonic cost ~750 instructions per poll.
        ms = _timeout_ms_c(timeout)
        deadline = c_monotonic() + timeout if ms > 0 else 0.0  # Linux: never -1
        while True:
            with cython.nogil:
                n = epoll_wait(self._epfd, self._events, 1024, ms)
            if n >= 0:
                return n
            if errno != EINTR:
                raise OSError(errno, os.strerror(errno))
            # PEP 475, as select.epoll.poll does: run the signal handlers (which may raise,
            # e.g. KeyboardInterrupt), then wait again for what is left of the timeout.
            PyErr_CheckSignals()
            if ms > 0:
                remaining = deadline - c_monotonic()
                ms = _timeout_ms_c(remaining) if remaining > 0 else 0

    def ready_fd(self, i: int) -> int:
        return int(self._events[i].data.fd)

    def ready_mask(self, i: int) -> int:
        ev = self._events[i].events
        mask = 0
        if ev & ~EPOLLOUT:
            mask |= READ
        if ev & ~EPOLLIN:
            mask |= WRITE
        return mask
