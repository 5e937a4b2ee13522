"""The seed's examples as parity tests, plus the runnable copies in examples/.

Invariant: each example's observable behaviour (output order, results, errors) is the same on
asyncio and on tideloop; event order is asserted instead of wall-clock durations.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tideloop

ROOT = Path(__file__).resolve().parents[2]




def test_hello_world(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    out: list[str] = []

    async def main() -> None:
        out.append("hello")
        t0 = loop.time()
        await asyncio.sleep(0.02)
        assert loop.time() - t0 >= 0.02  # a sleep never ends early
        out.append("world")

    assert run(main()) is None
    assert out == ["hello", "world"]


def test_two_say_after_tasks_run_concurrently(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    events: list[tuple[str, str]] = []

    async def say_after(delay: float, what: str) -> str:
        events.append(("start", what))
        await asyncio.sleep(delay)
        events.append(("say", what))
        return what

    async def main() -> list[str]:
        t1 = asyncio.create_task(say_after(0.02, "hello"))
        t2 = asyncio.create_task(say_after(0.04, "world"))
        return [await t1, await t2]

    assert run(main()) == ["hello", "world"]
    # Both started before either finished: the tasks overlapped, so the run takes the longer
    # delay and not the sum (durations belong in benchmarks, structure in tests).
    assert events == [("start", "hello"), ("start", "world"), ("say", "hello"), ("say", "world")]


def test_calling_a_coroutine_function_runs_nothing(loop: asyncio.AbstractEventLoop,
                                                   run: Any) -> None:
    ran: list[int] = []

    async def work() -> int:
        ran.append(1)
        return 1

    async def main() -> None:
        coro = work()
        await asyncio.sleep(0)
        assert asyncio.iscoroutine(coro)
        assert ran == []
        coro.close()
        assert ran == []

    run(main())
    assert ran == []


def test_coroutines_tasks_and_futures_are_awaitable(loop: asyncio.AbstractEventLoop,
                                                    run: Any) -> None:
    async def nested() -> int:
        return 42

    async def main() -> list[Any]:
        results = [await nested()]
        task = asyncio.create_task(nested())
        assert isinstance(task, asyncio.Task)
        results.append(await task)
        fut = loop.create_future()
        assert isinstance(fut, asyncio.Future)
        loop.call_soon(fut.set_result, "fut")
        results.append(await fut)
        efut = loop.run_in_executor(None, sum, [1, 2, 3])
        assert asyncio.isfuture(efut) and isinstance(efut, asyncio.Future)
        results.append(await efut)
        return results

    assert run(main()) == [42, 42, "fut", 6]


def test_task_names(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def main() -> None:
        t = asyncio.create_task(asyncio.sleep(0), name="named")
        assert t.get_name() == "named"
        t.set_name("renamed")
        assert t.get_name() == "renamed"
        t.set_name(123)
        assert t.get_name() == "123"
        anon = asyncio.create_task(asyncio.sleep(0))
        assert anon.get_name().startswith("Task-")
        await asyncio.gather(t, anon)

    run(main())


def test_create_task_without_running_loop_raises(loop: asyncio.AbstractEventLoop) -> None:
    async def work() -> None:
        pass

    coro = work()
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.create_task(coro)
    coro.close()


def test_sleep_returns_result(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def main() -> tuple[Any, Any]:
        return await asyncio.sleep(0.001, "result"), await asyncio.sleep(0, result=7)

    assert run(main()) == ("result", 7)


def test_shield_protects_inner_task(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    log: list[str] = []

    async def inner_work() -> str:
        await asyncio.sleep(0.02)
        log.append("inner done")
        return "inner"

    async def main() -> str:
        inner = asyncio.create_task(inner_work())
        outer = asyncio.ensure_future(asyncio.shield(inner))
        loop.call_later(0.005, outer.cancel)
        try:
            await outer
        except asyncio.CancelledError:
            log.append("outer cancelled")
        assert outer.cancelled()
        assert not inner.cancelled()
        return await inner

    assert run(main()) == "inner"
    assert log == ["outer cancelled", "inner done"]


def test_cancelled_error_try_except_pattern(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    log: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("cleanup")
            raise
        finally:
            log.append("finally")

    async def main() -> None:
        t = asyncio.create_task(worker())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()

    run(main())
    assert log == ["cleanup", "finally"]


def test_get_running_loop(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()

    async def main() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert run(main()) is loop
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_get_event_loop(current_loop: asyncio.AbstractEventLoop) -> None:
    assert asyncio.get_event_loop() is current_loop

    async def main() -> asyncio.AbstractEventLoop:
        return asyncio.get_event_loop()

    assert current_loop.run_until_complete(main()) is current_loop


def test_run_until_complete_wraps_coroutine_in_task(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    async def ok() -> str:
        seen.append(asyncio.current_task())
        return "value"

    async def fails() -> None:
        raise ValueError("boom")

    assert loop.run_until_complete(ok()) == "value"
    assert isinstance(seen[0], asyncio.Task)
    assert seen[0].get_loop() is loop
    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(fails())


EXAMPLES = {
    "hello_world.py": ["hello", "world"],
    "say_after.py": None,  # timestamps vary; checked below
    "shield.py": ["outer await cancelled", "inner: inner task finished"],
    "awaitables.py": None,
}


def test_examples_run_on_tideloop() -> None:
    # The children import the same tideloop (installed or in-place build) as this process.
    pkg_parent = str(Path(tideloop.__file__).resolve().parents[1])
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    procs = {
        name: subprocess.Popen([sys.executable, str(ROOT / "examples" / name)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in EXAMPLES
    }
    outs: dict[str, list[str]] = {}
    for name, p in procs.items():
        try:
            stdout, stderr = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"{name} did not finish")
        assert p.returncode == 0, f"{name}: {stderr}"
        assert stderr == "", f"{name} wrote to stderr: {stderr}"
        outs[name] = stdout.splitlines()
    for name, expected in EXAMPLES.items():
        if expected is not None:
            assert outs[name] == expected, name
    say = outs["say_after.py"]
    assert say[1:3] == ["hello", "world"] and say[0].startswith("started at")
    assert say[3].startswith("finished at")
    aw = outs["awaitables.py"]
    assert aw[0] == "calling nested() gave a coroutine, not 42"
    assert aw[-1] == "sleep(0.01, result='slept') -> 'slept'"
