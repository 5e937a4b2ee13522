"""Debug mode: get/set_debug, PYTHONASYNCIODEBUG, slow callbacks, wrong-thread and callback checks.

Invariant: in debug mode tideloop makes every check asyncio makes, with the same exception types
and messages, and reports slow callbacks on the 'asyncio' logger in asyncio's format.
"""
# mypy: disable-error-code="arg-type,attr-defined"
# (bad arguments are the point; 3.12+ APIs are used behind version checks)

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _support import run_bounded

import tideloop


def _cb() -> None:
    pass


async def _coro_fn() -> None:
    pass


def test_get_set_debug(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.get_debug() is False
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_debug_mode_tracks_coroutine_origins_while_running(
        loop: asyncio.AbstractEventLoop) -> None:
    depth_before = sys.get_coroutine_origin_tracking_depth()
    seen: list[int] = []
    loop.set_debug(True)
    loop.call_soon(lambda: seen.append(sys.get_coroutine_origin_tracking_depth()))
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen[0] > 0
    assert sys.get_coroutine_origin_tracking_depth() == depth_before
    loop.set_debug(False)


_PROBE = """
import asyncio, json, sys, tideloop
out = {}
for kind in ("asyncio", "tideloop"):
    loop = asyncio.new_event_loop() if kind == "asyncio" else tideloop.new_event_loop()
    out[kind] = loop.get_debug()
    loop.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("env,flags,expected", [
    ({"PYTHONASYNCIODEBUG": "1"}, [], True),
    ({"PYTHONASYNCIODEBUG": ""}, [], False),
    ({"PYTHONASYNCIODEBUG": ""}, ["-X", "dev"], True),
], ids=["PYTHONASYNCIODEBUG=1", "unset", "-X dev"])
def test_debug_from_environment(env: dict[str, str], flags: list[str], expected: bool) -> None:
    pkg_parent = str(Path(tideloop.__file__).resolve().parents[1])
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (pkg_parent, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, *flags, "-c", _PROBE], env=full_env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"asyncio": expected, "tideloop": expected}


def test_slow_callback_is_logged(loop: asyncio.AbstractEventLoop,
                                 caplog: pytest.LogCaptureFixture) -> None:
    def slow_cb() -> None:
        time.sleep(0.03)

    loop.set_debug(True)
    loop.slow_callback_duration = 0.01  # type: ignore[attr-defined]
    loop.call_soon(slow_cb)
    loop.call_soon(_cb)  # fast: not reported
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_bounded(loop)
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(msgs) == 1, msgs
    assert re.fullmatch(r"Executing <Handle .*slow_cb\(\) at .*test_debug\.py:\d+ "
                        r"created at .*test_debug\.py:\d+> took \d+\.\d{3} seconds", msgs[0])
    loop.set_debug(False)


def test_slow_task_step_is_logged_as_the_task(loop: asyncio.AbstractEventLoop,
                                              caplog: pytest.LogCaptureFixture) -> None:
    async def blocking() -> None:
        time.sleep(0.03)

    loop.set_debug(True)
    loop.slow_callback_duration = 0.01  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(loop.create_task(blocking(), name="sleepy"))
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(msgs) == 1, msgs
    assert re.fullmatch(r"Executing <Task .*name='sleepy'.*> took \d+\.\d{3} seconds",
                        msgs[0], re.S)
    loop.set_debug(False)


def test_slow_callback_not_logged_outside_debug_mode(loop: asyncio.AbstractEventLoop,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    loop.slow_callback_duration = 0.0  # type: ignore[attr-defined]
    loop.call_soon(time.sleep, 0.001)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run_bounded(loop)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_wrong_thread_in_debug_mode(loop: asyncio.AbstractEventLoop, method: str) -> None:
    loop.set_debug(True)
    errors: list[BaseException] = []

    def from_other_thread() -> None:
        try:
            if method == "call_soon":
                loop.call_soon(_cb)
            elif method == "call_later":
                loop.call_later(1, _cb)
            else:
                loop.call_at(loop.time() + 1, _cb)
        except BaseException as exc:  # noqa: BLE001 - recorded and asserted below
            errors.append(exc)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=from_other_thread)
    loop.call_soon(thread.start)  # so that the loop is surely running when the thread calls
    try:
        run_bounded(loop)
    finally:
        thread.join(5)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "Non-thread-safe operation invoked on an event loop other than the current one" \
        in str(errors[0])
    loop.set_debug(False)


def test_wrong_thread_call_soon_allowed_when_loop_not_running(
        loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            loop.call_soon(_cb)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert errors == []
    loop.set_debug(False)


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later",
                                    "call_at", "run_in_executor"])
@pytest.mark.parametrize("what", ["coroutine", "coroutine function", "non-callable"])
def test_bad_callbacks_in_debug_mode(loop: asyncio.AbstractEventLoop, method: str,
                                     what: str) -> None:
    loop.set_debug(True)
    coro = _coro_fn()
    bad: Any = {"coroutine": coro, "coroutine function": _coro_fn, "non-callable": 42}[what]
    try:
        with pytest.raises(TypeError) as info:
            if method in ("call_soon", "call_soon_threadsafe"):
                getattr(loop, method)(bad)
            elif method == "call_later":
                loop.call_later(0.1, bad)
            elif method == "call_at":
                loop.call_at(loop.time() + 0.1, bad)
            else:
                loop.run_in_executor(None, bad)
        # asyncio's call_later delegates to call_at, so its messages name call_at()
        # (checked exactly in test_call_later_bad_callback_message_names_call_at).
        name = "call_(at|later)" if method == "call_later" else method
        if what == "non-callable":
            assert re.fullmatch(rf"a callable object was expected by {name}\(\), got 42",
                                str(info.value))
        else:
            assert re.fullmatch(rf"coroutines cannot be used with {name}\(\)", str(info.value))
    finally:
        coro.close()
        loop.set_debug(False)


def test_call_later_bad_callback_message_names_call_at(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    with pytest.raises(TypeError) as info:
        loop.call_later(1, 42)  # type: ignore[arg-type]
    assert str(info.value) == "a callable object was expected by call_at(), got 42"
    loop.set_debug(False)


@pytest.mark.tideloop_only(reason="documented improvement: tideloop rejects non-callables "
                           "even outside debug mode (asyncio fails later, inside the loop)")
@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_non_callable_rejected_outside_debug_mode(loop: asyncio.AbstractEventLoop,
                                                  method: str) -> None:
    assert not loop.get_debug()
    coro = _coro_fn()
    try:
        for bad in (coro, 42):
            with pytest.raises(TypeError):
                if method in ("call_soon", "call_soon_threadsafe"):
                    getattr(loop, method)(bad)
                elif method == "call_later":
                    loop.call_later(0.1, bad)
                else:
                    loop.call_at(loop.time() + 0.1, bad)
    finally:
        coro.close()


def test_debug_failing_callback_reports_where_it_was_scheduled(
        loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise ValueError("boom")

    loop.set_debug(True)
    loop.call_soon(boom)  # the line the report must point at
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_bounded(loop)
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.ERROR]
    assert len(msgs) == 1
    assert "Object created at (most recent call last):" in msgs[0]
    assert "loop.call_soon(boom)  # the line the report must point at" in msgs[0]
    loop.set_debug(False)


def test_debug_task_source_traceback_points_at_user_code(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    task = loop.create_task(_coro_fn())
    tb = task._source_traceback
    assert tb, "debug mode records where a task was created"
    assert tb[-1].filename == __file__  # the user's line, not the loop's internals
    assert tb[-1].line == "task = loop.create_task(_coro_fn())"
    loop.run_until_complete(task)
    loop.set_debug(False)
