"""epoll reactor (Linux): level-triggered, one kernel registration per fd.

Invariant: the interest mask the kernel holds equals what the loop core last asked for; closed fds
vanish from the epoll set on their own, so unregistering one is silently accepted.
"""

from __future__ import annotations

import select

from ._reactor import READ, WRITE, timeout_ms

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
    name = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()  # close-on-exec by default since Python 3.4

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
        ms = timeout_ms(timeout)
        raw = self._epoll.poll(ms / 1000.0 if ms >= 0 else -1)
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
