"""Error messages, word for word: code and people grep for asyncio's texts.

Invariant: for each misuse below tideloop raises asyncio's exception type with asyncio's message.
"""
# mypy: disable-error-code="arg-type"
# (bad arguments are the point of these tests)

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
from collections.abc import Callable
from typing import Any

import pytest


def _cb() -> None:
    pass


class _NotAThreadPool(concurrent.futures.Executor):
    pass


CASES: dict[str, tuple[Callable[[asyncio.AbstractEventLoop], Any], type, str]] = {
    "set_exception_handler": (lambda lp: lp.set_exception_handler(1), TypeError,
                              "A callable object or None is expected, got 1"),
    "set_task_factory": (lambda lp: lp.set_task_factory(1), TypeError,
                         "task factory must be a callable or None"),
    "call_later None": (lambda lp: lp.call_later(None, _cb), TypeError,
                        "delay must not be None"),
    "call_at None": (lambda lp: lp.call_at(None, _cb), TypeError, "when cannot be None"),
    "sig type": (lambda lp: lp.add_signal_handler("x", _cb), TypeError,
                 "sig must be an int, not 'x'"),
    "sig range": (lambda lp: lp.add_signal_handler(0, _cb), ValueError,
                  "invalid signal number 0"),
    "SIGKILL": (lambda lp: lp.add_signal_handler(signal.SIGKILL, _cb), RuntimeError,
                f"sig {int(signal.SIGKILL)} cannot be caught"),
    "add_reader str": (lambda lp: lp.add_reader("x", _cb), ValueError,
                       "Invalid file object: 'x'"),
    "add_reader -1": (lambda lp: lp.add_reader(-1, _cb), ValueError,
                      "Invalid file descriptor: -1"),
    "run_until_complete": (lambda lp: lp.run_until_complete(1), TypeError,
                           "An asyncio.Future, a coroutine or an awaitable is required"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_error_message(loop: asyncio.AbstractEventLoop, case: str) -> None:
    call, exc_type, message = CASES[case]
    with pytest.raises(exc_type) as info:
        call(loop)
    assert str(info.value) == message


def test_set_default_executor_message(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError) as info:
        loop.set_default_executor(_NotAThreadPool())
    assert str(info.value) == "executor must be ThreadPoolExecutor instance"


CLOSED_CASES: dict[str, Callable[[asyncio.AbstractEventLoop], Any]] = {
    "call_soon": lambda lp: lp.call_soon(_cb),
    "call_later": lambda lp: lp.call_later(1, _cb),
    "run_forever": lambda lp: lp.run_forever(),
    "add_signal_handler": lambda lp: lp.add_signal_handler(signal.SIGUSR1, _cb),
    "run_in_executor": lambda lp: lp.run_in_executor(None, _cb),
}


@pytest.mark.parametrize("case", list(CLOSED_CASES))
def test_closed_loop_message(loop: asyncio.AbstractEventLoop, case: str) -> None:
    loop.close()
    with pytest.raises(RuntimeError) as info:
        CLOSED_CASES[case](loop)
    assert str(info.value) == "Event loop is closed"


def test_running_messages(loop_factory: Any) -> None:
    loop, other = loop_factory(), loop_factory()
    errors: list[str] = []

    def probe() -> None:
        # loop.run_forever last: asyncio 3.13.0 resets the running state after refusing it
        for call in (other.run_forever, loop.close, loop.run_forever):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        loop.stop()

    loop.call_soon(probe)
    loop.run_forever()
    assert errors == ["Cannot run the event loop while another loop is running",
                      "Cannot close a running event loop",
                      "This event loop is already running"]
