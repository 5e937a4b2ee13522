"""Helpers shared by the core parity tests (fixtures live in tests/conftest.py).

Invariant: helpers only bound, observe or re-clock a loop; virtual_clock is the one place that
knows each loop's private clock and poller names.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import tideloop

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


def run_bounded(loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> None:
    """run_forever, with a timer that stops the loop (and fails the test) if nothing else does."""
    fired: list[bool] = []

    def guard() -> None:
        fired.append(True)
        loop.stop()

    h = loop.call_later(timeout, guard)
    loop.run_forever()
    h.cancel()
    assert not fired, "run_forever was not stopped within the time limit"


def run_bounded_beside(loop: asyncio.AbstractEventLoop, target: Callable[[], object],
                       join_timeout: float = 10.0) -> None:
    """run_bounded while `target` runs in a thread of its own, joined (bounded) afterwards."""
    thread = threading.Thread(target=target)
    thread.start()
    try:
        run_bounded(loop)
    finally:
        thread.join(join_timeout)


class _VirtualReactor:
    """The loop's reactor with poll() replaced; everything else goes to the real one."""

    def __init__(self, real: Any, poll: Any) -> None:
        self._real = real
        self.poll = poll

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextmanager
def virtual_clock(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """The loop's clock becomes a counter that jumps to the next deadline instead of sleeping;
    when the loop would sleep forever (nothing left), it is stopped instead."""
    now = [time.monotonic()]
    iterations = [0]

    def clock() -> float:
        return now[0]

    def wrap(poll: Any, forever: Any) -> Any:
        def virtual_poll(timeout: Any) -> Any:
            iterations[0] += 1
            assert iterations[0] < 100_000, "the program does not terminate"
            if forever(timeout):
                loop.stop()
            elif timeout > 0:
                now[0] += timeout
            return poll(0)

        return virtual_poll

    if isinstance(loop, tideloop.EventLoop):
        # tideloop's scheduler reads loop.time(), and polls through loop._reactor (the compiled
        # core's direct epoll path steps aside when _reactor is not the epoll reactor itself).
        reactor: Any = loop._reactor  # type: ignore[attr-defined]
        loop.time = clock  # type: ignore[method-assign]
        loop._reactor = _VirtualReactor(reactor, wrap(reactor.poll, lambda t: t < 0))  # type: ignore[attr-defined]
        try:
            yield
        finally:
            loop._reactor = reactor  # type: ignore[attr-defined]
            del loop.time
    else:
        selector: Any = loop._selector  # type: ignore[attr-defined]
        loop.time = clock  # type: ignore[method-assign]
        selector.select = wrap(selector.select, lambda t: t is None)
        try:
            yield
        finally:
            del loop.time
            del selector.select
