"""Functions the multicore tests send to worker processes (importable by module name there)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

STATE: Any = None


async def square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


async def sleepy_square(x: int) -> int:
    # Later items finish first, so completion order differs from input order.
    await asyncio.sleep(0.002 * (10 - x % 10))
    return x * x


def plain_square(x: int) -> int:
    return x * x


async def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def getpid(_: Any = None) -> int:
    return os.getpid()


class CustomError(Exception):
    pass


class PickyError(Exception):
    """Does not survive pickling: its __init__ needs two arguments, args holds one."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"picky {a} {b}")


async def fail(x: int) -> int:
    if x == 3:
        raise CustomError(f"item {x} failed")
    return x


async def fail_picky(x: int) -> int:
    raise PickyError(x, x + 1)


async def report_and_hang(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    await asyncio.sleep(60)


async def hang_with_marker(dirpath: str, i: int) -> None:
    d = Path(dirpath)
    (d / f"started-{i}").write_text(str(os.getpid()))
    try:
        await asyncio.sleep(60)
    finally:
        (d / f"cancelled-{i}").write_text("1")


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self(_: Any = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_result(_: Any = None) -> Any:
    return threading.Lock()


def _explode() -> None:
    raise RuntimeError("cannot load this in the parent")


class LoadsBadly:
    def __reduce__(self) -> Any:
        return (_explode, ())


def bad_result(_: Any = None) -> Any:
    return LoadsBadly()


def init_state(value: Any) -> None:
    global STATE
    STATE = value


async def async_init_state(value: Any) -> None:
    global STATE
    await asyncio.sleep(0)
    STATE = ("async", value)


def bad_init() -> None:
    raise CustomError("initializer failed")


def get_state(_: Any = None) -> Any:
    return STATE


def burn(ms: float) -> float:
    end = time.perf_counter() + ms / 1000
    n = 0.0
    while time.perf_counter() < end:
        n += 1
    return n


def echo(x: Any) -> Any:
    return x


async def exit_on_five(x: int) -> int:
    if x == 5:
        await asyncio.sleep(0.05)
        os._exit(9)
    return x


def wait_for_go(arg: tuple[str, int]) -> int:
    """Item 0 returns at once; the others block (in plain, synchronous code) until `go` exists."""
    dirpath, i = arg
    if i == 0:
        return 0
    go = Path(dirpath) / "go"
    deadline = time.monotonic() + 20
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go")
        time.sleep(0.005)
    return i
