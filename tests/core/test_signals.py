"""add_signal_handler / remove_signal_handler: delivery through the loop, and asyncio's errors.

Invariant: a handled signal runs its callback on the loop (waking it if it sleeps), removal
restores the default disposition and the wakeup fd, and bad signals raise what asyncio raises.
"""
# mypy: disable-error-code="arg-type,func-returns-value"
# (bad arguments are the point; one-line callbacks are tuples of calls)

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _support import run_bounded, run_bounded_beside


@pytest.fixture(autouse=True)
def _restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)}
    yield
    for s, h in saved.items():
        if signal.getsignal(s) != h:
            signal.signal(s, h)


def test_signal_runs_the_handler_on_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    got: list[Any] = []

    def handler(arg: str) -> None:
        got.append((arg, asyncio.get_running_loop(), threading.current_thread()))
        loop.stop()

    assert loop.add_signal_handler(signal.SIGUSR1, handler, "arg") is None
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_bounded(loop)
    assert got == [("arg", loop, threading.main_thread())]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_wakes_a_sleeping_loop(loop: asyncio.AbstractEventLoop) -> None:
    got: list[int] = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append(1), loop.stop()))

    def send_later() -> None:
        time.sleep(0.05)  # the loop is asleep in its poller by now
        os.kill(os.getpid(), signal.SIGUSR1)

    run_bounded_beside(loop, send_later, join_timeout=5)
    assert got == [1]


def test_two_signals_two_handlers(loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []

    def on(name: str) -> None:
        got.append(name)
        if len(got) == 2:
            loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, on, "usr2")
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
    run_bounded(loop)
    assert sorted(got) == ["usr1", "usr2"]


def test_adding_again_replaces_the_handler(loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "old")
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("new"), loop.stop()))
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_bounded(loop)
    assert got == ["new"]


def test_failing_signal_handler_is_reported(loop: asyncio.AbstractEventLoop) -> None:
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))

    def bad() -> None:
        loop.call_soon(loop.stop)
        raise ValueError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, bad)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_bounded(loop)
    assert len(reported) == 1 and isinstance(reported[0]["exception"], ValueError)


def test_removing_sigint_restores_default_int_handler(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, signal.SIG_DFL)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_wakeup_fd_is_restored(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    assert fd != -1  # the loop's wakeup fd is installed while a handler exists
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.set_wakeup_fd(-1) == -1


def test_close_removes_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


@pytest.mark.parametrize("sig", [0, -1, signal.NSIG, 1000], ids=["0", "-1", "NSIG", "1000"])
def test_bad_signal_number(loop: asyncio.AbstractEventLoop, sig: int) -> None:
    with pytest.raises(ValueError, match=f"invalid signal number {sig}"):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(ValueError, match=f"invalid signal number {sig}"):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", ["SIGUSR1", 1.0, None], ids=["str", "float", "None"])
def test_signal_must_be_an_int(loop: asyncio.AbstractEventLoop, sig: Any) -> None:
    with pytest.raises(TypeError, match="sig must be an int"):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(TypeError, match="sig must be an int"):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["SIGKILL", "SIGSTOP"])
def test_uncatchable_signal(loop: asyncio.AbstractEventLoop, sig: int) -> None:
    with pytest.raises(RuntimeError, match=f"sig {sig} cannot be caught"):
        loop.add_signal_handler(sig, lambda: None)
    assert signal.set_wakeup_fd(-1) == -1  # the failed add left nothing installed


def test_coroutine_callback_rejected(loop: asyncio.AbstractEventLoop) -> None:
    async def coro_fn() -> None:
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with add_signal_handler"):
        loop.add_signal_handler(signal.SIGUSR1, coro_fn)
    coro = coro_fn()
    try:
        with pytest.raises(TypeError, match="coroutines cannot be used with add_signal_handler"):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_from_a_non_main_thread(loop: asyncio.AbstractEventLoop) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_closed_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)


def test_signal_received_between_runs_is_handled_on_the_next_run(
        loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("usr1"), loop.stop()))
    os.kill(os.getpid(), signal.SIGUSR1)  # the loop is not running now
    assert got == []
    run_bounded(loop)
    assert got == ["usr1"]


def test_signal_handler_runs_while_the_loop_is_busy(loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []
    spins = [0]

    def spin() -> None:  # always something ready: the loop never sleeps
        spins[0] += 1
        if got or spins[0] > 200_000:
            loop.stop()
        else:
            loop.call_soon(spin)

    loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    loop.call_soon(spin)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_bounded(loop)
    assert got == ["usr1"]


def test_plain_signal_handler_interrupting_a_timed_wait(loop: asyncio.AbstractEventLoop) -> None:
    # A signal.signal() handler (not the loop's) interrupts the poller's wait with EINTR: the
    # handler runs and the wait resumes for the rest of the timeout, so the sleep neither
    # fails nor ends before its time (PEP 475 semantics, as asyncio's selector has them).
    got: list[int] = []
    saved = signal.signal(signal.SIGUSR2, lambda signum, frame: got.append(signum))

    def send_later() -> None:
        time.sleep(0.05)  # the loop is asleep in its poller by now
        # To the loop's thread: a process-directed signal may land on this one instead.
        signal.pthread_kill(loop_thread, signal.SIGUSR2)

    async def main() -> float:
        start = loop.time()
        await asyncio.sleep(0.2)
        return loop.time() - start

    loop_thread = threading.get_ident()
    t = threading.Thread(target=send_later)
    t.start()
    try:
        slept = loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        t.join()
        signal.signal(signal.SIGUSR2, saved)
    assert got == [signal.SIGUSR2]
    assert slept >= 0.2 - loop._clock_resolution  # type: ignore[attr-defined]
