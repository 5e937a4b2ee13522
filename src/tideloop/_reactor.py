"""The reactor contract: the one interface every readiness mechanism (epoll, poll, kqueue) meets.

Invariants: an fd is registered at most once, always with a non-empty interest mask of READ|WRITE;
``poll`` returns each ready fd at most once per call, and reports an error or hang-up on an fd as
both READ and WRITE so that whichever callback is waiting gets to see the error.
"""

from __future__ import annotations

import os
import select
from typing import Protocol

READ = 1
WRITE = 2

# asyncio caps a single wait at one day (base_events.MAXIMUM_SELECT_TIMEOUT); so do we.
MAX_TIMEOUT = 24 * 3600.0


class Reactor(Protocol):
    """What the loop core needs from a readiness mechanism.

    ``register`` on an fd that is already registered, and ``modify``/``unregister`` on one that
    is not, are programming errors of the caller (the loop core tracks registrations itself, so
    that it never needs to ask the kernel). ``unregister`` of an fd the kernel already forgot
    (because it was closed) is not an error. ``poll(timeout)`` blocks for at most ``timeout``
    seconds (``-1`` means forever, ``0`` means do not block) and never returns early without a
    reason other than a signal.
    """

    name: str

    def register(self, fd: int, events: int) -> None: ...

    def modify(self, fd: int, events: int) -> None: ...

    def unregister(self, fd: int) -> None: ...

    def poll(self, timeout: float) -> list[tuple[int, int]]: ...

    def close(self) -> None: ...


def new_reactor(name: str | None = None) -> Reactor:
    """The best mechanism this OS has, or the one TIDELOOP_REACTOR (epoll/poll/kqueue) names."""
    if name is None:
        name = os.environ.get("TIDELOOP_REACTOR", "") or "auto"
    if name == "auto":
        if hasattr(select, "epoll"):
            name = "epoll"
        elif hasattr(select, "kqueue"):
            name = "kqueue"
        else:
            name = "poll"
    if name == "epoll":
        from ._epoll import EpollReactor

        return EpollReactor()
    if name == "poll":
        from ._poll import PollReactor

        return PollReactor()
    if name == "kqueue":
        from ._kqueue import KqueueReactor

        return KqueueReactor()
    raise ValueError(f"unknown reactor {name!r}: expected 'epoll', 'poll', 'kqueue' or 'auto'")


def timeout_ms(timeout: float) -> int:
    """Seconds to whole milliseconds, rounding *up*.

    epoll and poll count milliseconds; rounding a 0.4 ms wait down to 0 would make the loop spin
    until a timer is due instead of sleeping.
    """
    if timeout < 0:
        return -1
    ms = int(timeout * 1000.0)
    if ms < timeout * 1000.0:
        ms += 1
    return ms
