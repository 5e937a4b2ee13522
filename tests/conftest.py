"""Shared fixtures: one loop per test, parametrized over stock asyncio and tideloop's reactors.

Invariant: every test that takes ``loop``/``loop_factory`` runs on asyncio (which validates the
test) and on tideloop with the epoll and the poll reactor (which validates tideloop); each loop is
shut down and closed afterwards, and a test that leaves an fd or a thread behind fails.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import tideloop
import tideloop._core

T = TypeVar("T")

LOOP_KINDS = ("asyncio", "tideloop", "tideloop-poll")
TIDELOOP_KINDS = ("tideloop", "tideloop-poll")

# A hung test kills the run with a traceback of every thread instead of hanging CI.
HARD_TIMEOUT = float(os.environ.get("TIDELOOP_TEST_HARD_TIMEOUT", "60"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = "compiled" if tideloop.COMPILED else "interpreted"
    reactor = os.environ.get("TIDELOOP_REACTOR") or "auto"
    return [f"tideloop {tideloop.__version__}: {mode} core (COMPILED={tideloop.COMPILED}, "
            f"{tideloop._core.__file__}); default reactor {reactor}; loop params "
            f"{', '.join(LOOP_KINDS)}"]


def pytest_configure(config: pytest.Config) -> None:
    # A run started by nohup, or as a background job of a non-interactive shell, inherits SIGHUP
    # or SIGINT as ignored, and so would every child the tests start (an ignored signal stays
    # ignored across exec, and a shell cannot even trap it back). The tests that Ctrl-C or hang
    # up a child need a terminal session's defaults.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    config.addinivalue_line(
        "markers", "tideloop_only(reason): a documented tideloop improvement or extension that "
        "asyncio does not promise; runs on the tideloop params only")
    config.addinivalue_line(
        "markers", "xfail_tideloop(reason, kinds=...): a known tideloop bug; strict xfail on "
        "the tideloop params (or only the listed kinds); the asyncio param must pass")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "loop_kind" not in metafunc.fixturenames:
        return
    only = metafunc.definition.get_closest_marker("tideloop_only")
    bug = metafunc.definition.get_closest_marker("xfail_tideloop")
    params = []
    for kind in (TIDELOOP_KINDS if only else LOOP_KINDS):
        marks = []
        if bug is not None and kind in bug.kwargs.get("kinds", TIDELOOP_KINDS):
            reason = bug.kwargs.get("reason") or (bug.args[0] if bug.args else "tideloop bug")
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        params.append(pytest.param(kind, marks=marks, id=kind))
    metafunc.parametrize("loop_kind", params)


def _real_stderr_fd(config: pytest.Config) -> int:
    """The terminal's stderr even while pytest captures fd 2 (else the hang report is lost)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    try:
        return int(capman._global_capturing.err.targetfd_save)  # private: best effort
    except (AttributeError, TypeError, ValueError):
        return 2


@pytest.fixture(autouse=True)
def _hard_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    faulthandler.dump_traceback_later(HARD_TIMEOUT, exit=True,
                                      file=_real_stderr_fd(request.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def open_fds() -> set[int]:
    # listdir's own directory fd appears in both snapshots, so comparing sets is fair.
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run does after main: leftover tasks, async generators, executor, close."""
    if loop.is_closed():
        return
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


class LeakCheck:
    """Snapshot of fds and threads; ``check()`` fails the test if the test added any."""

    def __init__(self) -> None:
        self.fds = open_fds()
        self.threads = set(threading.enumerate())

    def check(self) -> None:
        # Executor threads told to stop by close()/shutdown(wait=False) exit on their own soon.
        deadline = time.monotonic() + 5.0
        for t in set(threading.enumerate()) - self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        leaked_threads = [t for t in threading.enumerate() if t not in self.threads]
        assert not leaked_threads, f"threads leaked by the test: {leaked_threads}"
        leaked = sorted(open_fds() - self.fds)
        if leaked:
            desc = []
            for fd in leaked:
                try:
                    desc.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
                except OSError:
                    desc.append(str(fd))
            pytest.fail(f"fds leaked by the test: {desc}")


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """For tests that make their loops some other way (run(), Runner, policies)."""
    leaks = LeakCheck()
    yield
    leaks.check()


@pytest.fixture
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def is_tideloop(loop_kind: str) -> bool:
    return loop_kind != "asyncio"


@pytest.fixture
def loop_factory(loop_kind: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[Callable[[], asyncio.AbstractEventLoop]]:
    """A factory of fresh loops of the parametrized kind; every loop it made is closed after."""
    leaks = LeakCheck()
    if loop_kind == "tideloop-poll":
        monkeypatch.setenv("TIDELOOP_REACTOR", "poll")
    elif loop_kind == "tideloop":
        monkeypatch.delenv("TIDELOOP_REACTOR", raising=False)
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        lp: asyncio.AbstractEventLoop
        if loop_kind == "asyncio":
            lp = asyncio.new_event_loop()
        else:
            lp = tideloop.new_event_loop()
            expected = "poll" if loop_kind == "tideloop-poll" else "epoll"
            assert lp._reactor.name == expected  # type: ignore[attr-defined]
        made.append(lp)
        return lp

    yield factory
    try:
        for lp in made:
            _shutdown(lp)
    finally:
        asyncio.set_event_loop(None)
    made.clear()
    leaks.check()


@pytest.fixture
def loop(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> asyncio.AbstractEventLoop:
    """A new loop, not set as the current loop (use ``current_loop`` for that)."""
    return loop_factory()


@pytest.fixture
def current_loop(loop: asyncio.AbstractEventLoop) -> Iterator[asyncio.AbstractEventLoop]:
    """The ``loop`` fixture, also set as the thread's current event loop for the test."""
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)


RunFn = Callable[..., Any]


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> RunFn:
    """``run(coro, timeout=5)``: run a coroutine to completion on ``loop``, bounded in time."""

    def runner(coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(timeout):
                return await coro

        return loop.run_until_complete(bounded())

    return runner
