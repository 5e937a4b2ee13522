"""tideloop.run / tideloop.Runner / asyncio.run(loop_factory=...) / install(), and Ctrl-C.

Invariant: running a coroutine through any entry point gives asyncio.run's semantics: result or
exception out, leftover tasks cancelled, async generators and the executor shut down, the loop
closed, RuntimeError from inside a running loop, and Ctrl-C cancelling the main task.
"""
# mypy: disable-error-code="call-arg"
# (3.12+ keyword arguments used behind version checks)

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import PY312

import tideloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("rvar", default="unset")


@pytest.fixture
def arun(loop_kind: str, loop_factory: Any) -> Callable[..., Any]:
    """asyncio.run on the asyncio param, tideloop.run on the tideloop ones (the loop_factory
    fixture sets the reactor and checks for leaks)."""
    return asyncio.run if loop_kind == "asyncio" else tideloop.run


def _expected_type(loop_kind: str) -> type:
    return asyncio.BaseEventLoop if loop_kind == "asyncio" else tideloop.EventLoop


def test_run_returns_result_on_the_right_loop(arun: Any, loop_kind: str) -> None:
    async def main() -> Any:
        return asyncio.get_running_loop()

    loop: Any = arun(main())
    expected: Any = _expected_type(loop_kind)
    assert isinstance(loop, expected)
    assert loop.is_closed()


def test_run_raises_the_exception(arun: Any) -> None:
    async def main() -> None:
        raise ArithmeticError("in main")

    with pytest.raises(ArithmeticError, match="in main"):
        arun(main())


def test_run_debug(arun: Any) -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert arun(main(), debug=True) is True
    assert arun(main(), debug=False) is False


def test_run_rejects_non_coroutines(arun: Any) -> None:
    with pytest.raises(ValueError, match="coroutine"):
        arun(asyncio.sleep)


def test_run_cancels_leftover_tasks(arun: Any) -> None:
    log: list[str] = []

    async def leftover() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.append("leftover cancelled")
            raise

    async def main() -> str:
        asyncio.create_task(leftover())
        await asyncio.sleep(0)
        return "main done"

    assert arun(main()) == "main done"
    assert log == ["leftover cancelled"]


def test_run_reports_leftover_task_errors_during_cancellation(arun: Any,
                                                              caplog: Any) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ValueError("failed while being cancelled")

    async def main() -> None:
        asyncio.create_task(stubborn())
        await asyncio.sleep(0)

    arun(main())
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("unhandled exception during asyncio.run() shutdown" in m for m in msgs), msgs


def test_run_finalizes_async_generators(arun: Any) -> None:
    log: list[str] = []
    keep: list[Any] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            log.append("agen closed")

    async def main() -> None:
        g = agen()
        keep.append(g)
        await g.__anext__()

    arun(main())
    assert log == ["agen closed"]


def test_run_shuts_down_the_default_executor(arun: Any) -> None:
    names: list[str] = []

    async def main() -> None:
        def where() -> None:
            names.append(threading.current_thread().name)

        await asyncio.get_running_loop().run_in_executor(None, where)

    arun(main())
    assert names
    # run() waited for the executor: its threads are gone when run() returns
    assert not [t for t in threading.enumerate() if t.name == names[0]]


def test_run_from_a_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    async def inner() -> None:
        pass

    async def main() -> list[str]:
        errors = []
        for entry in (asyncio.run, tideloop.run):
            coro = inner()
            try:
                entry(coro)
            except RuntimeError as exc:
                errors.append(str(exc))
            finally:
                coro.close()
        return errors

    errors = loop.run_until_complete(main())
    assert errors == ["asyncio.run() cannot be called from a running event loop",
                      "tideloop.run() cannot be called from a running event loop"]


def test_asyncio_runner_with_loop_factory(loop_factory: Any, loop_kind: str) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        async def main(x: int) -> tuple[int, Any]:
            return x, asyncio.get_running_loop()

        r1, loop1 = runner.run(main(1))
        r2, loop2 = runner.run(main(2))
        assert (r1, r2) == (1, 2)
        assert loop1 is loop2 is runner.get_loop()
        assert isinstance(loop1, _expected_type(loop_kind))
    assert loop1.is_closed()


def test_runner_context_argument(loop_factory: Any) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "runner ctx")

    async def main() -> str:
        return var.get()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(main(), context=ctx) == "runner ctx"
        assert runner.run(main()) == "unset"


def test_tideloop_runner(no_leaks: None) -> None:
    async def main() -> Any:
        return asyncio.get_running_loop()

    with tideloop.Runner(debug=True) as runner:
        loop = runner.run(main())
        assert isinstance(loop, tideloop.EventLoop)
        assert loop.get_debug()
        assert runner.run(main()) is loop
    assert loop.is_closed()
    assert issubclass(tideloop.Runner, asyncio.Runner)


@pytest.mark.skipif(not PY312, reason="asyncio.run(loop_factory=...) is new in 3.12")
def test_asyncio_run_with_tideloop_factory(no_leaks: None) -> None:
    async def main() -> Any:
        return asyncio.get_running_loop()

    loop = asyncio.run(main(), loop_factory=tideloop.new_event_loop)
    assert isinstance(loop, tideloop.EventLoop) and loop.is_closed()


@pytest.fixture
def restore_policy() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


def test_install_and_policy(no_leaks: None, restore_policy: None) -> None:
    tideloop.install()
    policy = asyncio.get_event_loop_policy()
    assert isinstance(policy, tideloop.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, tideloop.EventLoop)
    finally:
        loop.close()

    async def main() -> Any:
        return asyncio.get_running_loop()

    ran_on = asyncio.run(main())
    assert isinstance(ran_on, tideloop.EventLoop)

    # legacy code that asks the policy for "the" loop gets a tideloop loop too (a fresh
    # policy: after asyncio.run(), asyncio's policy refuses to make an implicit loop)
    import warnings

    tideloop.install()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = asyncio.get_event_loop()
    try:
        assert isinstance(legacy, tideloop.EventLoop)
        assert legacy.run_until_complete(asyncio.sleep(0, "legacy")) == "legacy"
    finally:
        asyncio.set_event_loop(None)
        legacy.close()


def test_policy_new_event_loop(no_leaks: None) -> None:
    loop = tideloop.EventLoopPolicy().new_event_loop()
    try:
        assert isinstance(loop, tideloop.EventLoop)
    finally:
        loop.close()


def _start_child(source: str, *args: str) -> subprocess.Popen[str]:
    """A Python child running ``source`` with this tideloop importable; the environment carries
    TIDELOOP_REACTOR / TIDELOOP_NO_EXTENSIONS, so the child runs the same core as the test."""
    pkg_parent = str(Path(tideloop.__file__).resolve().parents[1])
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-c", source, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


_CTRL_C_CHILD = r"""
import asyncio, sys
kind, busy = sys.argv[1], sys.argv[2] == "busy"
if kind != "asyncio":
    import tideloop
async def main():
    print("ready", flush=True)
    try:
        if busy:  # the loop never sleeps: the signal must still get through
            while True:
                await asyncio.sleep(0)
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("main cancelled", flush=True)
        raise
try:
    if kind == "asyncio":
        asyncio.run(main())
    else:
        tideloop.run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
print("returned normally", flush=True)
"""


@pytest.mark.parametrize("busy", ["sleeping", "busy"])
def test_ctrl_c_cancels_main_and_raises_keyboard_interrupt(loop_kind: str, loop_factory: Any,
                                                           busy: str) -> None:
    proc = _start_child(_CTRL_C_CHILD, loop_kind, busy)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the child's loop is running main
        assert first == "ready\n", proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.splitlines() == ["main cancelled", "KeyboardInterrupt"], err
    assert proc.returncode == 3


_SIGNAL_STORM_CHILD = r"""
import asyncio, signal, sys, time
kind = sys.argv[1]
if kind != "asyncio":
    import tideloop
async def main():
    loop = asyncio.get_running_loop()
    woken = []
    def on_alarm(signum, frame):  # runs between two bytecodes of the loop thread, wherever it is
        loop.call_soon_threadsafe(woken.append, signum)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # a busy loop: the loop's own code is always running
            await asyncio.sleep(0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
    await asyncio.sleep(0)
    print("woken", len(woken) > 0, set(woken) == {signal.SIGALRM}, flush=True)
(asyncio.run if kind == "asyncio" else tideloop.run)(main())
"""


def test_signal_handlers_may_call_soon_threadsafe_at_any_point_of_the_loop(
        loop_kind: str, loop_factory: Any) -> None:
    # A Python signal handler runs on the loop thread in the middle of whatever the loop was
    # doing, as asyncio.Runner's Ctrl-C handler does; its call_soon_threadsafe must neither
    # deadlock against the loop's own bookkeeping nor lose the callback. A 1 ms timer signal
    # during 0.3 s of busy looping lands in every part of the loop.
    proc = _start_child(_SIGNAL_STORM_CHILD, loop_kind)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (out, proc.returncode) == ("woken True True\n", 0), err


_STUBBORN_CHILD = r"""
import asyncio, sys
kind = sys.argv[1]
if kind != "asyncio":
    import tideloop
async def main():
    print("ready", flush=True)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("ignoring the first cancellation", flush=True)
    # printed from a callback once main is suspended: the next Ctrl-C cannot land inside main
    asyncio.get_running_loop().call_later(0.05, lambda: print("asleep again", flush=True))
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("cancelled again", flush=True)
        raise
try:
    (asyncio.run if kind == "asyncio" else tideloop.run)(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
print("returned normally", flush=True)
"""


def test_second_ctrl_c_interrupts_a_main_that_ignores_the_first(loop_kind: str,
                                                                loop_factory: Any) -> None:
    proc = _start_child(_STUBBORN_CHILD, loop_kind)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline() == "ignoring the first cancellation\n"
        assert proc.stdout.readline() == "asleep again\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # the second Ctrl-C raises KeyboardInterrupt out of the loop at once; closing the runner
    # then cancels the still-pending main task
    assert out.splitlines() == ["cancelled again", "KeyboardInterrupt"], err
    assert proc.returncode == 3
