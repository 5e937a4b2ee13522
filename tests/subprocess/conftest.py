"""Loop-parametrized fixtures: every test runs on stock asyncio and on tideloop.

Subprocess tests also run tideloop with its portable child watch (one waiter thread per child)
forced on, so the fallback used where pidfd is missing is exercised on Linux too.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from tideloop import _subprocess

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def tideloop_factory() -> LoopFactory:
    """tideloop.new_event_loop once EventLoop composes SubprocessMixin; until then the mixin on
    top of tideloop.EventLoop (or of asyncio's selector loop, before the core existed)."""
    from tideloop._procloop import SubprocessMixin

    try:
        import tideloop

        base: type = tideloop.EventLoop
    except (ImportError, AttributeError):
        base = asyncio.SelectorEventLoop
    if issubclass(base, SubprocessMixin):
        return tideloop.new_event_loop  # type: ignore[no-any-return]

    class _DevLoop(SubprocessMixin, base):  # type: ignore[misc, valid-type]
        pass

    return _DevLoop


@pytest.fixture(params=["asyncio", "tideloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    if request.param == "asyncio":
        return asyncio.new_event_loop
    return tideloop_factory()


@pytest.fixture(params=["asyncio", "tideloop", "tideloop-thread"])
def proc_loop_factory(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> LoopFactory:
    if request.param == "asyncio":
        return asyncio.new_event_loop
    if request.param == "tideloop-thread":
        monkeypatch.setattr(_subprocess, "use_pidfd", False)
    elif not _subprocess.pidfd_supported():
        pytest.skip("no pidfd on this system")
    return tideloop_factory()


def is_tideloop(factory: LoopFactory) -> bool:
    return factory is not asyncio.new_event_loop


def run(factory: LoopFactory, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run coro on a fresh loop from factory, bounded in time, and close the loop."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, timeout))


def open_fds() -> set[int]:
    gc.collect()
    return {int(name) for name in os.listdir("/proc/self/fd")}


def zombies() -> list[int]:
    """Pids of our own children that exited and were never reaped."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z" and int(fields[1]) == me:
            found.append(int(name))
    return found


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail if the test leaves an fd open or a child unreaped."""
    before = open_fds()
    yield
    after = open_fds()
    # compare counts: the fd that lists /proc/self/fd may get a different number each time
    assert len(after) <= len(before), f"fds left open: {sorted(after - before)}"
    assert zombies() == []
