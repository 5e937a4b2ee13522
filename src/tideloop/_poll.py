"""poll(2) reactor: the portable fallback, and the one CI forces with TIDELOOP_REACTOR=poll.

Invariant: the set of fds handed to poll(2) equals the loop core's registrations; POLLERR, POLLHUP
and POLLNVAL wake both directions.
"""

from __future__ import annotations

import errno
import os
import select
import stat

from ._reactor import READ, WRITE, timeout_ms

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT


def _to_poll(events: int) -> int:
    mask = 0
    if events & READ:
        mask |= _POLLIN
    if events & WRITE:
        mask |= _POLLOUT
    return mask


class PollReactor:
    name = "poll"

    def __init__(self) -> None:
        self._poll = select.poll()

    def register(self, fd: int, events: int) -> None:
        # poll(2) accepts a closed fd (POLLNVAL forever) and a regular file (always ready);
        # fail now with the errors epoll_ctl gives, EBADF and EPERM.
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        self._poll.register(fd, _to_poll(events))

    def modify(self, fd: int, events: int) -> None:
        # poll.modify raises if the fd is unknown; register replaces an entry either way.
        self._poll.register(fd, _to_poll(events))

    def unregister(self, fd: int) -> None:
        try:
            self._poll.unregister(fd)
        except KeyError:
            pass

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        ms = timeout_ms(timeout)
        raw = self._poll.poll(None if ms < 0 else ms)
        if not raw:
            return raw
        out = []
        for fd, ev in raw:
            mask = 0
            if ev & ~_POLLOUT:
                mask |= READ
            if ev & ~_POLLIN:
                mask |= WRITE
            out.append((fd, mask))
        return out

    def close(self) -> None:
        pass  # poll(2) holds no kernel object
