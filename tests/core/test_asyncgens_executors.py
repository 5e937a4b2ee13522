"""Async generator finalization (hooks, shutdown_asyncgens) and executors.

Invariant: an async generator the program abandons is finalized on the loop (by the GC hook or by
shutdown_asyncgens), and executor work returns through awaitable asyncio Futures; both follow
asyncio's rules for shutdown and errors.
"""
# mypy: disable-error-code="attr-defined,call-arg"
# (3.12+ APIs and arguments are used behind version checks; mypy checks 3.11)

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _support import PY312, PY313


def test_suspended_async_generator_is_finalized_by_shutdown_asyncgens(
        loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []
    keep: list[Any] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # finalization may itself await
            log.append("finalized")

    async def main() -> None:
        g = agen()
        keep.append(g)  # still referenced: only shutdown_asyncgens can finalize it
        assert await g.__anext__() == 1

    loop.run_until_complete(main())
    assert log == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert log == ["finalized"]


def test_garbage_collected_async_generator_is_finalized_on_the_loop(
        loop: asyncio.AbstractEventLoop) -> None:
    log: list[Any] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            log.append(asyncio.get_running_loop())

    async def main() -> None:
        g = agen()
        await g.__anext__()
        del g
        gc.collect()
        for _ in range(5):  # the finalizer schedules aclose() as a task
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert log == [loop]


def test_shutdown_asyncgens_reports_errors(loop: asyncio.AbstractEventLoop) -> None:
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))
    keep: list[Any] = []

    async def bad() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            raise ValueError("cleanup failed")

    async def main() -> None:
        g = bad()
        keep.append(g)
        await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(reported) == 1
    ctx = reported[0]
    assert ctx["message"].startswith("an error occurred during closing of asynchronous generator")
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["asyncgen"] is keep[0]


def test_async_generator_after_shutdown_warns(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def agen() -> AsyncIterator[int]:
        yield 1

    async def main() -> None:
        g = agen()
        with pytest.warns(ResourceWarning, match="after loop.shutdown_asyncgens"):
            await g.__anext__()
        await g.aclose()

    loop.run_until_complete(main())


def test_shutdown_asyncgens_with_nothing_to_do(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.run_until_complete(loop.shutdown_asyncgens()) is None


def test_run_in_executor_default(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    def work(a: int, b: int) -> tuple[int, str]:
        return a + b, threading.current_thread().name

    async def main() -> None:
        fut = loop.run_in_executor(None, work, 2, 3)
        assert isinstance(fut, asyncio.Future) and fut.get_loop() is loop
        value, thread_name = await fut
        assert value == 5
        assert thread_name != threading.current_thread().name
        assert thread_name.startswith("asyncio")

    run(main())


def test_run_in_executor_exception(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    def fails() -> None:
        raise LookupError("in thread")

    async def main() -> None:
        with pytest.raises(LookupError, match="in thread"):
            await loop.run_in_executor(None, fails)

    run(main())


def test_run_in_executor_explicit_executor(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine") as ex:
        async def main() -> str:
            return await loop.run_in_executor(ex, lambda: threading.current_thread().name)

        assert run(main()).startswith("mine")


def test_set_default_executor(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom-default")
    loop.set_default_executor(ex)

    async def main() -> str:
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    assert run(main()).startswith("custom-default")
    run(loop.shutdown_default_executor())
    # the loop shut down the executor it was given
    with pytest.raises(RuntimeError):
        ex.submit(lambda: None)


def test_set_default_executor_rejects_other_executors(loop: asyncio.AbstractEventLoop) -> None:
    class NotAThreadPool(concurrent.futures.Executor):
        pass

    with pytest.raises(TypeError, match="ThreadPoolExecutor"):
        loop.set_default_executor(NotAThreadPool())
    with pytest.raises(TypeError):
        loop.set_default_executor(None)  # type: ignore[arg-type]


def test_shutdown_default_executor(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def main() -> None:
        assert await loop.run_in_executor(None, sum, [1, 2]) == 3
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
            loop.run_in_executor(None, sum, [1])

    run(main())


def test_shutdown_default_executor_waits_for_running_work(loop: asyncio.AbstractEventLoop,
                                                          run: Any) -> None:
    done: list[str] = []
    release = threading.Event()

    def job() -> None:
        release.wait(5)
        done.append("job")

    async def main() -> None:
        fut = loop.run_in_executor(None, job)
        loop.call_later(0.01, release.set)
        await loop.shutdown_default_executor()
        assert done == ["job"]
        await fut

    run(main())


@pytest.mark.skipif(not PY312, reason="shutdown_default_executor(timeout) is new in 3.12")
def test_shutdown_default_executor_timeout_argument(loop: asyncio.AbstractEventLoop,
                                                    run: Any) -> None:
    async def main() -> None:
        await loop.run_in_executor(None, sum, [1])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # finished well within the timeout: no warning
            await loop.shutdown_default_executor(timeout=5)

    run(main())


@pytest.mark.skipif(not PY312, reason="shutdown_default_executor(timeout) is new in 3.12")
def test_shutdown_default_executor_timeout_expires(loop: asyncio.AbstractEventLoop, run: Any,
                                                   loop_kind: str) -> None:
    if loop_kind == "asyncio" and not PY313:
        pytest.skip("asyncio 3.12 applies the timeout only after the executor has finished")
    release = threading.Event()

    async def main() -> None:
        fut = loop.run_in_executor(None, release.wait, 5)
        try:
            with pytest.warns(RuntimeWarning, match="did not finishing joining its threads "
                                                    r"within 0\.01 seconds"):
                await loop.shutdown_default_executor(timeout=0.01)
        finally:
            release.set()
        assert await fut is True

    run(main())


def test_close_shuts_down_the_default_executor(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(loop.run_in_executor(None, sum, [1]))
    threads_before_close = [t for t in threading.enumerate() if t.name.startswith("asyncio")]
    assert threads_before_close
    loop.close()
    for t in threads_before_close:  # close() tells them to exit without waiting
        t.join(5)
        assert not t.is_alive()


def test_shutdown_default_executor_without_executor(loop: asyncio.AbstractEventLoop,
                                                    run: Any) -> None:
    async def main() -> None:
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
            loop.run_in_executor(None, sum, [1])
        # an explicit executor is still fine
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            assert await loop.run_in_executor(ex, sum, [1, 2]) == 3

    run(main())
