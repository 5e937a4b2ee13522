"""Shared fixtures for the multicore tests: a bounded runner and a no-child-left-behind check."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest


def _loop_factories() -> list[str]:
    names = ["asyncio"]
    try:
        import tideloop

        if hasattr(tideloop, "new_event_loop"):
            names.append("tideloop")
    except ImportError:
        pass
    return names


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) comes after the ")" that closes the command name.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_children_or_fds_left(request: pytest.FixtureRequest) -> Iterator[None]:
    before = children_of(os.getpid())
    fds_before = open_fds()
    yield
    deadline = time.monotonic() + 2.0
    left = children_of(os.getpid()) - before
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = children_of(os.getpid()) - before
    assert not left, f"child processes left behind: {sorted(left)}"
    # Pipes, pidfds and sockets of the pool/supervisor are all closed (the listdir's own fd
    # is in both sets).
    if "ray_node" in request.fixturenames:
        return  # Ray's client keeps its own connections open between tests
    leaked = open_fds() - fds_before
    assert not leaked, f"file descriptors left open: {sorted(leaked)}"


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Any:
    """run(coro, timeout=20): run on a fresh loop of the parametrized kind, bounded in time."""
    return _runner(request.param)


@pytest.fixture
def run_tl() -> Any:
    """Like ``run`` on tideloop's loop only (for the slower tests, to keep the suite fast)."""
    return _runner(_loop_factories()[-1])


def _runner(kind: str) -> Any:
    def new_loop() -> asyncio.AbstractEventLoop:
        if kind == "tideloop":
            import tideloop

            return tideloop.new_event_loop()
        return asyncio.new_event_loop()

    def runner(coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        loop = new_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return runner
