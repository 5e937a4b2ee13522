"""run_forever / run_until_complete / stop / close / is_running / is_closed, and their errors.

Invariant: the loop's life cycle and every error it raises for misuse (closed loop, nested run,
non-awaitables) match asyncio's, including the exact exception types.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from _support import run_bounded

import tideloop


def test_stop_before_run_forever_runs_one_iteration(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    loop.call_soon(order.append, "a")
    loop.call_soon(lambda: loop.call_soon(order.append, "next iteration"))
    loop.stop()
    loop.run_forever()  # returns after one iteration: no guard needed, a hang is a failure
    assert order == ["a"]
    assert not loop.is_running()
    # the stop request was consumed: the next run_forever runs until told otherwise
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert order == ["a", "next iteration"]


def test_stop_twice_is_one_stop(loop: asyncio.AbstractEventLoop) -> None:
    loop.stop()
    loop.stop()
    loop.run_forever()
    ran: list[int] = []
    loop.call_later(0.005, ran.append, 1)
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert ran == [1]


def test_is_running(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[bool] = []
    assert not loop.is_running()
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == [True]
    assert not loop.is_running()


def test_running_loop_is_set_only_while_running(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []
    assert asyncio._get_running_loop() is None
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == [loop]
    assert asyncio._get_running_loop() is None


def test_asyncgen_hooks_are_restored_after_run(loop: asyncio.AbstractEventLoop) -> None:
    before = sys.get_asyncgen_hooks()
    during: list[Any] = []
    loop.call_soon(lambda: during.append(sys.get_asyncgen_hooks()))
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert during[0].firstiter is not None and during[0].finalizer is not None
    assert sys.get_asyncgen_hooks() == before


def test_run_until_complete_coroutine(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> int:
        await asyncio.sleep(0)
        return 5

    assert loop.run_until_complete(main()) == 5
    assert not loop.is_running()


def test_run_until_complete_future(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    loop.call_later(0.001, fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"
    # an already finished future returns at once
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_future_exception_and_cancel(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    loop.call_soon(fut.set_exception, KeyError("k"))
    with pytest.raises(KeyError):
        loop.run_until_complete(fut)
    fut2 = loop.create_future()
    loop.call_soon(fut2.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut2)


def test_run_until_complete_awaitable_object(loop: asyncio.AbstractEventLoop) -> None:
    class Awaitable:
        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


@pytest.mark.parametrize("bad", [None, 1, "str", lambda: None], ids=["None", "int", "str", "fn"])
def test_run_until_complete_non_awaitable(loop: asyncio.AbstractEventLoop, bad: Any) -> None:
    with pytest.raises(TypeError, match="awaitable"):
        loop.run_until_complete(bad)
    assert not loop.is_running()


def test_run_until_complete_future_of_another_loop(
        loop_factory: Any) -> None:
    loop = loop_factory()
    other = asyncio.new_event_loop()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_run_until_complete_stopped_early(loop: asyncio.AbstractEventLoop) -> None:
    async def stops_the_loop() -> None:
        loop.stop()
        await asyncio.sleep(10)

    coro = stops_the_loop()
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
        loop.run_until_complete(coro)


def test_run_until_complete_propagates_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        loop.run_until_complete(fails())
    # and the loop is usable afterwards
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def test_base_exception_from_callback_unwinds_run_forever(loop: asyncio.AbstractEventLoop) -> None:
    def exit_() -> None:
        raise SystemExit(3)

    after: list[str] = []
    loop.call_soon(exit_)
    loop.call_soon(after.append, "same iteration")
    with pytest.raises(SystemExit):
        run_bounded(loop)
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    loop.call_soon(loop.stop)
    run_bounded(loop)  # the loop can run again; the rest of the iteration was kept
    assert after == ["same iteration"]


def test_keyboard_interrupt_from_task_propagates(loop: asyncio.AbstractEventLoop) -> None:
    async def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(interrupt())
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1


def test_nested_run_forever(loop: asyncio.AbstractEventLoop) -> None:
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(exc)

    loop.call_soon(nested)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert len(errors) == 1
    assert "already running" in str(errors[0])


def test_refused_nested_run_leaves_the_loop_running(loop: asyncio.AbstractEventLoop,
                                                    loop_kind: str) -> None:
    if loop_kind == "asyncio" and sys.version_info[:3] == (3, 13, 0):
        pytest.skip("asyncio 3.13.0 resets the running state when it refuses a nested run")
    seen: list[Any] = []

    def nested() -> None:
        with pytest.raises(RuntimeError):
            loop.run_forever()
        seen.append((loop.is_running(), asyncio.get_running_loop()))

    loop.call_soon(nested)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == [(True, loop)]


def test_nested_run_until_complete(loop: asyncio.AbstractEventLoop) -> None:
    async def inner() -> None:
        pass

    async def outer() -> str:
        coro = inner()
        try:
            loop.run_until_complete(coro)
        except RuntimeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "no error"

    assert "already running" in loop.run_until_complete(outer())


def test_running_a_loop_inside_another_running_loop(loop_factory: Any) -> None:
    outer, inner = loop_factory(), loop_factory()

    async def main() -> str:
        try:
            inner.run_until_complete(asyncio.sleep(0))
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "another loop is running" in outer.run_until_complete(main())
    assert inner.run_until_complete(asyncio.sleep(0, "inner ok")) == "inner ok"


def test_close_is_idempotent(loop: asyncio.AbstractEventLoop) -> None:
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()
    assert loop.is_closed()


def test_close_while_running(loop: asyncio.AbstractEventLoop) -> None:
    errors: list[BaseException] = []

    def try_close() -> None:
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(exc)

    loop.call_soon(try_close)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert len(errors) == 1 and "running" in str(errors[0])
    assert not loop.is_closed()


def test_close_drops_pending_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    ran: list[int] = []
    loop.call_soon(ran.append, 1)
    loop.call_later(0.001, ran.append, 2)
    loop.close()
    assert ran == []


def _noop() -> None:
    pass


@pytest.mark.parametrize("call", [
    lambda lp: lp.call_soon(_noop),
    lambda lp: lp.call_soon_threadsafe(_noop),
    lambda lp: lp.call_later(1, _noop),
    lambda lp: lp.call_at(lp.time() + 1, _noop),
    lambda lp: lp.run_forever(),
    lambda lp: lp.run_in_executor(None, _noop),
], ids=["call_soon", "call_soon_threadsafe", "call_later", "call_at", "run_forever",
        "run_in_executor"])
def test_closed_loop_raises(loop: asyncio.AbstractEventLoop, call: Any) -> None:
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        call(loop)


def test_closed_loop_create_task_and_run_until_complete(loop: asyncio.AbstractEventLoop) -> None:
    loop.close()

    async def main() -> None:
        pass

    coro = main()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(coro)
    coro.close()
    fut = loop.create_future()  # asyncio allows this; the future simply never completes
    assert not fut.done()


def test_repr_does_not_fail(loop: asyncio.AbstractEventLoop) -> None:
    r = repr(loop)
    assert "running=False" in r and "closed=False" in r and "debug=False" in r
    loop.close()
    assert "closed=True" in repr(loop)


def test_unclosed_loop_warns_and_releases_its_fds(loop_kind: str, loop_factory: Any) -> None:
    # loop_factory checks afterwards that no fd leaked, so __del__ must have closed the loop.
    import gc
    import warnings

    import tideloop

    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        with warnings.catch_warnings():
            warnings.simplefilter("always", ResourceWarning)
            lp = asyncio.new_event_loop() if loop_kind == "asyncio" else tideloop.new_event_loop()
            lp.call_soon(lambda: None)
            del lp
            gc.collect()


def test_loop_running_in_another_thread(loop: asyncio.AbstractEventLoop) -> None:
    import threading

    results: list[Any] = []
    started = threading.Event()

    def runner() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()
        asyncio.set_event_loop(None)

    t = threading.Thread(target=runner)
    t.start()
    try:
        assert started.wait(5)

        async def work() -> tuple[bool, Any]:
            return loop.is_running(), threading.current_thread().name

        fut = asyncio.run_coroutine_threadsafe(work(), loop)
        results.append(fut.result(timeout=5))
        assert loop.is_running()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
    assert results == [(True, t.name)]
    assert not loop.is_running()


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
def test_base_exception_keeps_the_rest_of_the_iteration(loop: asyncio.AbstractEventLoop,
                                                        debug: bool) -> None:
    loop.set_debug(debug)
    order: list[str] = []

    def interrupt() -> None:
        order.append("interrupt")
        loop.call_soon(order.append, "scheduled during the interrupted iteration")
        raise KeyboardInterrupt

    loop.call_soon(order.append, "before")
    loop.call_soon(interrupt)
    loop.call_soon(order.append, "after 1")
    loop.call_soon(order.append, "after 2")
    with pytest.raises(KeyboardInterrupt):
        run_bounded(loop)
    assert order == ["before", "interrupt"]
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert order == ["before", "interrupt", "after 1", "after 2",
                     "scheduled during the interrupted iteration"]
    loop.set_debug(False)


def test_nan_delay_runs_at_once(loop: asyncio.AbstractEventLoop, loop_kind: str) -> None:
    if loop_kind == "asyncio" and sys.version_info >= (3, 13):
        pytest.skip("asyncio 3.13's selector raises ValueError for a NaN timeout")
    got: list[str] = []
    loop.call_later(float("nan"), got.append, "nan timer")
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert got == ["nan timer"]


def test_infinite_delays(loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []
    never = loop.call_later(float("inf"), got.append, "inf")
    loop.call_later(-float("inf"), got.append, "-inf")
    loop.call_later(10**30, got.append, "huge")
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert got == ["-inf"]
    assert never.when() == float("inf")


class _Payload:
    """Something a callback holds on to; a weakref to it tells whether the loop still does."""


def test_close_drops_every_callback_reference(loop: asyncio.AbstractEventLoop) -> None:
    import gc
    import socket
    import weakref

    a, b = socket.socketpair()
    try:
        payloads = [_Payload() for _ in range(5)]
        refs = [weakref.ref(p) for p in payloads]
        loop.call_soon(id, payloads[0])
        loop.call_later(10, id, payloads[1])
        loop.call_at(loop.time() + 10, id, payloads[2])
        loop.add_reader(a, id, payloads[3])
        loop.add_writer(b, id, payloads[4])
        del payloads
        loop.close()
        gc.collect()
        assert [r() for r in refs] == [None] * 5
    finally:
        a.close()
        b.close()


def test_cancel_drops_the_callback_reference(loop: asyncio.AbstractEventLoop) -> None:
    import gc
    import weakref

    p1, p2 = _Payload(), _Payload()
    r1, r2 = weakref.ref(p1), weakref.ref(p2)
    h1 = loop.call_soon(id, p1)
    h2 = loop.call_later(10, id, p2)
    del p1, p2
    h1.cancel()
    h2.cancel()  # still in the timer queue, but it must not keep its arguments alive
    gc.collect()
    assert r1() is None and r2() is None


def test_run_forever_calls_an_instance_patched_run_once(loop: asyncio.AbstractEventLoop) -> None:
    # asyncio's run_forever calls self._run_once(); the compiled core skips that lookup per
    # iteration when nothing replaces it, so a replacement must still be seen.
    calls = []
    real = loop._run_once  # type: ignore[attr-defined]

    def counting() -> None:
        calls.append(1)
        real()

    loop._run_once = counting  # type: ignore[attr-defined]
    try:
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        del loop._run_once  # type: ignore[attr-defined]
    assert calls


def test_run_forever_calls_a_subclass_run_once(loop_kind: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    base: Any = asyncio.SelectorEventLoop if loop_kind == "asyncio" else tideloop.EventLoop
    calls = []

    class Counting(base):  # type: ignore[misc, valid-type]
        def _run_once(self) -> None:
            calls.append(1)
            super()._run_once()

    if loop_kind == "tideloop-poll":
        monkeypatch.setenv("TIDELOOP_REACTOR", "poll")
    loop = Counting()
    try:
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    assert calls
