"""create_future / create_task (name, context, eager start) and task factories.

Invariant: the loop hands out asyncio's own Future and Task types, honours every create_task
argument asyncio's loop does, and routes every task creation through the task factory.
"""
# mypy: disable-error-code="attr-defined"
# (3.12+ APIs are used behind version checks; mypy checks against 3.11)

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
from typing import Any

import pytest
from _support import PY312

var: contextvars.ContextVar[str] = contextvars.ContextVar("tvar", default="unset")

needs_312 = pytest.mark.skipif(not PY312, reason="eager tasks are new in Python 3.12")


def test_create_future(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    assert type(fut) is asyncio.Future
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.cancel()


def test_create_task_types_and_loop(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def work() -> int:
        return 3

    async def main() -> None:
        task = loop.create_task(work())
        assert type(task) is asyncio.Task
        assert task.get_loop() is loop
        assert task in asyncio.all_tasks()
        assert await task == 3
        task2 = asyncio.create_task(work())  # goes through loop.create_task
        assert type(task2) is asyncio.Task and task2.get_loop() is loop
        assert await task2 == 3

    run(main())


def test_create_task_outside_a_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []

    async def work() -> None:
        order.append("task ran")

    task = loop.create_task(work())
    assert not task.done()
    loop.run_until_complete(task)
    assert order == ["task ran"]


def test_create_task_name(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def main() -> None:
        t = loop.create_task(asyncio.sleep(0), name="alpha")
        assert t.get_name() == "alpha"
        assert "alpha" in repr(t)
        await t

    run(main())


def test_create_task_context(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "task ctx")

    async def work() -> str:
        value = var.get()
        var.set("set in task")
        return value

    async def main() -> None:
        var.set("main ctx")
        t = loop.create_task(work(), context=ctx)
        assert await t == "task ctx"
        assert ctx[var] == "set in task"
        assert var.get() == "main ctx"
        if PY312:
            assert t.get_context() is ctx

    run(main())


def test_create_task_rejects_non_coroutines(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match="coroutine"):
        loop.create_task(lambda: None)  # type: ignore[arg-type]


def test_set_task_factory(loop: asyncio.AbstractEventLoop, run: Any, loop_kind: str) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        calls.append((lp, kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def work() -> int:
        return 1

    async def main() -> None:
        t1 = loop.create_task(work())
        t2 = asyncio.create_task(work(), name="named")
        ctx = contextvars.copy_context()
        t3 = loop.create_task(work(), context=ctx)
        assert [await t1, await t2, await t3] == [1, 1, 1]
        assert t2.get_name() == "named"
        if not (loop_kind == "asyncio" and sys.version_info[:3] == (3, 13, 0)):
            # asyncio 3.13.0 names such a task 'None' (a CPython 3.13.0 bug);
            # tideloop keeps the factory's name, as every other asyncio release does.
            assert t1.get_name().startswith("Task-")

    run(main())
    # the run() helper's own task goes through the factory too
    assert len(calls) == 4
    assert all(lp is loop for lp, _ in calls)
    assert "context" in calls[-1][1]
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None


def test_set_task_factory_rejects_non_callable(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError):
        loop.set_task_factory(1)  # type: ignore[arg-type]
    assert loop.get_task_factory() is None


def test_task_factory_returning_a_custom_task(loop: asyncio.AbstractEventLoop,
                                              run: Any) -> None:
    class MyTask(asyncio.Task):  # type: ignore[type-arg]
        pass

    loop.set_task_factory(lambda lp, coro, **kw: MyTask(coro, loop=lp, **kw))

    async def main() -> type:
        t = asyncio.create_task(asyncio.sleep(0, "x"), name="custom")
        assert t.get_name() == "custom"
        assert await t == "x"
        return type(t)

    assert run(main()) is MyTask


@needs_312
def test_eager_task_factory(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    order: list[str] = []

    async def quick() -> str:
        order.append("quick ran")
        return "quick"

    async def slow() -> str:
        order.append("slow started")
        await asyncio.sleep(0)
        order.append("slow resumed")
        return "slow"

    loop.set_task_factory(asyncio.eager_task_factory)

    async def main() -> None:
        t = loop.create_task(quick())
        order.append("after create_task")
        assert t.done() and t.result() == "quick"  # finished without the loop
        t2 = asyncio.create_task(slow(), name="eager-slow")
        order.append("after second create_task")
        assert not t2.done() and t2.get_name() == "eager-slow"
        assert await t2 == "slow"

    run(main())
    assert order == ["quick ran", "after create_task", "slow started",
                     "after second create_task", "slow resumed"]


@needs_312
def test_eager_task_factory_with_context(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    loop.set_task_factory(asyncio.eager_task_factory)
    ctx = contextvars.copy_context()
    ctx.run(var.set, "eager ctx")

    async def read() -> str:
        return var.get()

    async def main() -> str:
        t = loop.create_task(read(), context=ctx)
        assert t.done()
        return t.result()

    assert run(main()) == "eager ctx"


@needs_312
@pytest.mark.tideloop_only(reason="documented extension: loop.create_task(eager_start=...) on "
                           "3.12+ (asyncio's loop accepts it only from 3.14)")
def test_create_task_eager_start_extension(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    order: list[str] = []

    async def work(tag: str) -> str:
        order.append(f"{tag} started")
        await asyncio.sleep(0)
        return tag

    async def main() -> None:
        eager = loop.create_task(work("eager"), eager_start=True, name="e")  # type: ignore[call-arg]
        order.append("after eager create")
        lazy = loop.create_task(work("lazy"), eager_start=False)  # type: ignore[call-arg]
        order.append("after lazy create")
        assert eager.get_name() == "e"
        assert await eager == "eager" and await lazy == "lazy"

    run(main())
    assert order == ["eager started", "after eager create", "after lazy create", "lazy started"]


def test_task_exception_never_retrieved_is_reported(loop: asyncio.AbstractEventLoop) -> None:
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))

    async def fails() -> None:
        raise ValueError("lost")

    task = loop.create_task(fails())
    loop.run_until_complete(asyncio.sleep(0.001))
    assert task.done()
    del task
    gc.collect()
    assert len(reported) == 1
    assert reported[0]["message"] == "Task exception was never retrieved"
    assert isinstance(reported[0]["exception"], ValueError)


def test_current_task_and_all_tasks(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def child() -> Any:
        return asyncio.current_task()

    async def main() -> None:
        me = asyncio.current_task()
        assert me is not None and me.get_loop() is loop
        t = asyncio.create_task(child())
        assert t in asyncio.all_tasks() and me in asyncio.all_tasks(loop)
        assert await t is t
        assert t not in asyncio.all_tasks()

    run(main())
    assert asyncio.current_task(loop) is None


def test_taskgroup_and_timeout(loop: asyncio.AbstractEventLoop, run: Any) -> None:
    async def main() -> list[int]:
        results: list[int] = []

        async def add(i: int) -> None:
            await asyncio.sleep(i / 1000)
            results.append(i)

        async with asyncio.TaskGroup() as tg:
            for i in (3, 1, 2):
                tg.create_task(add(i))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001):
                await asyncio.sleep(10)
        return results

    assert run(main()) == [1, 2, 3]


def test_recursion_of_tasks_does_not_leak_frames(loop: asyncio.AbstractEventLoop,
                                                  run: Any) -> None:
    # A long chain of tasks awaiting each other must complete (no C stack growth per task).
    async def chain(n: int) -> int:
        if n == 0:
            return 0
        return 1 + await asyncio.create_task(chain(n - 1))

    assert run(chain(min(500, sys.getrecursionlimit() // 4))) == min(500,
                                                                     sys.getrecursionlimit() // 4)
