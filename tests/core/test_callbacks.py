"""call_soon, call_soon_threadsafe, call_later, call_at, handles and the clock, on every loop.

Invariant: ready callbacks run in FIFO order, timers in deadline order, a cancelled handle never
runs, and each callback runs in the context it was scheduled with -- exactly as on asyncio.
"""
# mypy: disable-error-code="attr-defined,func-returns-value"
# (3.12+ APIs behind version checks; one-line callbacks are tuples of calls)

from __future__ import annotations

import asyncio
import contextvars
import decimal
import fractions
import re
import sys
import threading
import time
from typing import Any

import pytest
from _support import PY312, run_bounded

import tideloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_call_soon_is_fifo(loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    for i in range(200):
        loop.call_soon(order.append, i)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert order == list(range(200))


def test_call_soon_passes_args_and_returns_handle(loop: asyncio.AbstractEventLoop) -> None:
    got: list[tuple[Any, ...]] = []
    h = loop.call_soon(lambda *a: got.append(a), 1, "two", None)
    assert not h.cancelled()
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert got == [(1, "two", None)]
    assert not h.cancelled()


def test_callbacks_scheduled_while_running_wait_for_next_iteration(
        loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(order.append, "scheduled by first")

    loop.call_soon(first)
    loop.call_soon(order.append, "second")
    loop.call_soon(loop.stop)  # stop() lets the current iteration finish, nothing more
    run_bounded(loop)
    assert order == ["first", "second"]
    loop.call_soon(loop.stop)  # what the last iteration scheduled is kept for the next run
    run_bounded(loop)
    assert order == ["first", "second", "scheduled by first"]


def test_ready_callbacks_run_before_due_timers_of_the_same_iteration(
        loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    loop.call_later(0, order.append, "timer")
    loop.call_soon(order.append, "soon")
    loop.call_later(-1, order.append, "past timer")
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert order == ["soon", "past timer", "timer"]


def test_cancelled_handle_never_runs(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    h = loop.call_soon(order.append, "cancelled")
    loop.call_soon(order.append, "kept")
    h.cancel()
    assert h.cancelled()
    h.cancel()  # idempotent
    assert h.cancelled()
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert order == ["kept"]


def test_handle_cancelled_by_an_earlier_callback_in_same_iteration(
        loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    later: list[asyncio.Handle] = []
    loop.call_soon(lambda: later[0].cancel())
    later.append(loop.call_soon(order.append, "never"))
    loop.call_soon(order.append, "runs")
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert order == ["runs"]


def test_call_soon_context(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[str] = []

    def record_and_set() -> None:
        seen.append(var.get())
        var.set("set by callback")

    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    h = loop.call_soon(record_and_set, context=ctx)
    if PY312:  # Handle.get_context() is new in 3.12
        assert h.get_context() is ctx
    var.set("outer")
    token_less = loop.call_soon(record_and_set)  # copies the current context now
    var.set("changed after scheduling")
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == ["in ctx", "outer"]
    assert ctx[var] == "set by callback"  # the callback ran *in* ctx, not in a copy
    assert var.get() == "changed after scheduling"
    if PY312:
        assert isinstance(token_less.get_context(), contextvars.Context)


def test_call_later_and_call_at_context(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "timer ctx")
    h1 = loop.call_later(0.001, lambda: seen.append(var.get()), context=ctx)
    h2 = loop.call_at(loop.time() + 0.002, lambda: seen.append(var.get()), context=ctx)
    if PY312:
        assert h1.get_context() is ctx and h2.get_context() is ctx
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert seen == ["timer ctx", "timer ctx"]


def test_call_soon_threadsafe_wakes_a_sleeping_loop(loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []

    def other_thread() -> None:
        time.sleep(0.05)  # let the loop go to sleep in its poller first
        loop.call_soon_threadsafe(got.append, "from thread")
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=other_thread)
    t.start()
    try:
        run_bounded(loop, timeout=5.0)  # only the thread can end this before the guard
    finally:
        t.join(5)
    assert got == ["from thread"]


def test_call_soon_threadsafe_from_many_threads(loop: asyncio.AbstractEventLoop) -> None:
    n_threads, per_thread = 4, 250
    got: list[tuple[int, int]] = []
    done = [0]

    def finished() -> None:
        done[0] += 1
        if done[0] == n_threads:
            loop.stop()

    def worker(k: int) -> None:
        for i in range(per_thread):
            loop.call_soon_threadsafe(got.append, (k, i))
        loop.call_soon_threadsafe(finished)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    try:
        run_bounded(loop)
    finally:
        for t in threads:
            t.join(5)
    assert len(got) == n_threads * per_thread
    for k in range(n_threads):  # FIFO per producer thread
        assert [i for (kk, i) in got if kk == k] == list(range(per_thread))


@pytest.mark.parametrize("n_threads", [1, 8])
def test_call_soon_threadsafe_never_loses_a_wakeup(loop: asyncio.AbstractEventLoop,
                                                   n_threads: int) -> None:
    # Each call waits for its callback before the next: the loop is idle between rounds, so
    # every call races with the loop draining the self-pipe and going back to sleep. A wake-up
    # lost to that race leaves a callback unrun until something else wakes the loop.
    rounds = 2000 // n_threads
    lost: list[tuple[int, int]] = []
    finished = [0]

    def finish() -> None:
        finished[0] += 1
        if finished[0] == n_threads:
            loop.stop()

    def worker(k: int) -> None:
        ran = threading.Event()
        for i in range(rounds):
            ran.clear()
            loop.call_soon_threadsafe(ran.set)
            if not ran.wait(5.0):
                lost.append((k, i))
                break
        loop.call_soon_threadsafe(finish)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    try:
        run_bounded(loop, timeout=30.0)
    finally:
        for t in threads:
            t.join(15)
    assert lost == []
    assert finished[0] == n_threads


def test_call_soon_threadsafe_copies_the_context_per_call(
        loop: asyncio.AbstractEventLoop) -> None:
    # asyncio runs each threadsafe callback in its own copy of the caller's context: a set()
    # in one is not seen by the next, nor by the caller.
    seen: list[str] = []

    def cb(i: int) -> None:
        seen.append(var.get())
        var.set(f"set by {i}")

    def producer() -> None:
        var.set("producer")
        for i in range(3):
            loop.call_soon_threadsafe(cb, i)
        loop.call_soon_threadsafe(loop.stop)

    token = var.set("caller")
    try:
        for i in range(3):
            loop.call_soon_threadsafe(cb, i)
        t = threading.Thread(target=producer)
        t.start()
        t.join()
        run_bounded(loop)
        assert var.get() == "caller"
    finally:
        var.reset(token)
    assert seen == ["caller"] * 3 + ["producer"] * 3


def test_call_soon_threadsafe_context(loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "threadsafe ctx")
    seen: list[str] = []
    h = loop.call_soon_threadsafe(lambda: seen.append(var.get()), context=ctx)
    if PY312:
        assert h.get_context() is ctx
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == ["threadsafe ctx"]


def test_call_later_runs_in_deadline_order(loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    for ms in (30, 10, 20, 5, 25, 15):
        loop.call_later(ms / 1000, order.append, ms)
    loop.call_later(0.04, loop.stop)
    run_bounded(loop)
    assert order == [5, 10, 15, 20, 25, 30]


def test_call_at_runs_in_deadline_order(loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    now = loop.time()
    for ms in (12, 3, 7):
        loop.call_at(now + ms / 1000, order.append, ms)
    loop.call_at(now + 0.02, loop.stop)
    run_bounded(loop)
    assert order == [3, 7, 12]


def test_timer_never_fires_early(loop: asyncio.AbstractEventLoop) -> None:
    fired: list[float] = []
    resolution = time.get_clock_info("monotonic").resolution
    h = loop.call_later(0.02, lambda: fired.append(loop.time()))
    loop.call_later(0.03, loop.stop)
    run_bounded(loop)
    assert len(fired) == 1
    # asyncio runs a timer once it is due within one clock tick; never sooner.
    assert fired[0] >= h.when() - resolution


def test_call_later_cancel(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    h1 = loop.call_later(0.001, order.append, "cancelled")
    loop.call_later(0.002, order.append, "kept")
    h1.cancel()
    assert h1.cancelled()
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert order == ["kept"]
    h1.cancel()
    assert h1.cancelled()


def test_cancel_a_timer_after_it_ran(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    h = loop.call_later(0, order.append, "ran")
    loop.call_later(0.005, loop.stop)
    run_bounded(loop)
    h.cancel()  # harmless: it already ran
    assert h.cancelled()
    loop.call_later(0.001, order.append, "next")
    loop.call_later(0.005, loop.stop)
    run_bounded(loop)
    assert order == ["ran", "next"]


def test_timer_cancelled_by_a_timer_due_in_the_same_iteration(
        loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    when = loop.time() + 0.005
    victim: list[asyncio.TimerHandle] = []
    loop.call_at(when, lambda: (order.append("first"), victim[0].cancel()))
    victim.append(loop.call_at(when + 1e-6, order.append, "victim"))
    loop.call_at(when + 2e-6, order.append, "third")
    loop.call_at(when + 0.01, loop.stop)
    run_bounded(loop)
    assert order == ["first", "third"]


def test_many_timers_mostly_cancelled(loop: asyncio.AbstractEventLoop) -> None:
    # Over 100 timers with more than half cancelled makes asyncio (and tideloop) rebuild the
    # heap instead of popping; both paths must keep the survivors in order.
    order: list[int] = []
    now = loop.time()
    handles = [loop.call_at(now + 0.001 + i * 1e-5, order.append, i) for i in range(400)]
    for i, h in enumerate(handles):
        if i % 4:
            h.cancel()
    loop.call_at(now + 0.02, loop.stop)
    run_bounded(loop)
    assert order == list(range(0, 400, 4))
    assert all(h.cancelled() for i, h in enumerate(handles) if i % 4)


def test_timer_handle_when(loop: asyncio.AbstractEventLoop) -> None:
    t0 = loop.time()
    h = loop.call_later(10, lambda: None)
    t1 = loop.time()
    assert t0 + 10 <= h.when() <= t1 + 10
    h2 = loop.call_at(t0 + 5.5, lambda: None)
    assert h2.when() == t0 + 5.5
    h.cancel()
    h2.cancel()
    assert h2.when() == t0 + 5.5  # still answers after cancel


def test_timer_handles_compare_by_when(loop: asyncio.AbstractEventLoop) -> None:
    now = loop.time()
    a = loop.call_at(now + 1, lambda: None)
    b = loop.call_at(now + 2, lambda: None)
    assert a < b and b > a and a <= b and b >= a and a != b
    assert sorted([b, a]) == [a, b]
    a.cancel()
    b.cancel()


def _cb(*args: Any) -> None:
    pass


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
def test_handle_repr_matches_asyncio(loop: asyncio.AbstractEventLoop, debug: bool) -> None:
    loop.set_debug(debug)
    h = loop.call_soon(_cb, 1, "x")
    line = sys._getframe().f_lineno - 1
    ref = asyncio.Handle(_cb, (1, "x"), loop)
    shape = r"<Handle _cb\((1, 'x')?\) at .*test_callbacks\.py:\d+"
    assert repr(h).split(" created at ")[0] == repr(ref).split(" created at ")[0]
    assert re.match(shape, repr(h))
    if debug:  # the user's line, not a frame inside the loop
        assert repr(h).endswith(f" created at {__file__}:{line}>")
        assert (h._source_traceback[-1].filename, h._source_traceback[-1].lineno) == (
            __file__, line)
    else:
        assert h._source_traceback is None
    h.cancel()
    ref.cancel()
    if debug:
        # debug mode keeps the description of a cancelled handle
        assert repr(h).startswith("<Handle cancelled _cb(1, 'x') at ")
    else:
        assert repr(h) == repr(ref) == "<Handle cancelled>"
    loop.set_debug(False)


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
def test_timer_handle_repr_matches_asyncio(loop: asyncio.AbstractEventLoop, debug: bool) -> None:
    loop.set_debug(debug)
    when = loop.time() + 100.25
    h = loop.call_at(when, _cb)
    line = sys._getframe().f_lineno - 1
    h2 = loop.call_later(100, _cb)
    line2 = sys._getframe().f_lineno - 1
    ref = asyncio.TimerHandle(when, _cb, (), loop)
    if debug:
        assert repr(h).endswith(f" created at {__file__}:{line}>")
        assert repr(h2).endswith(f" created at {__file__}:{line2}>")
    h2.cancel()
    assert repr(h).split(" created at ")[0] == repr(ref).split(" created at ")[0]
    assert repr(h).startswith(f"<TimerHandle when={when} _cb() at ")
    h.cancel()
    # (asyncio.TimerHandle.cancel() would call a private hook of asyncio's own loop.)
    if not debug:
        assert repr(h) == f"<TimerHandle cancelled when={when}>"
    else:
        assert repr(h).startswith(f"<TimerHandle cancelled when={when} _cb() at ")
    loop.set_debug(False)


def test_call_later_bad_delay(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError):
        loop.call_later(None, _cb)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loop.call_later("1", _cb)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loop.call_at(None, _cb)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [0.5, 2, True, fractions.Fraction(1, 3), decimal.Decimal("1.5"),
                                   10**400, float("inf")],
                         ids=["float", "int", "bool", "fraction", "decimal", "huge-int", "inf"])
def test_call_later_delay_types_as_asyncio(loop: asyncio.AbstractEventLoop, delay: Any) -> None:
    # asyncio computes loop.time() + delay: what that sum gives (or raises) is the contract.
    now = loop.time()
    try:
        expected: Any = now + delay
    except Exception as exc:
        with pytest.raises(type(exc)):
            loop.call_later(delay, _cb)
        return
    h = loop.call_later(delay, _cb)
    assert now <= h.when()
    if expected == float("inf"):
        assert h.when() == expected
    else:
        assert h.when() - float(expected) <= 0.5  # the loop's own now is a little later
    h.cancel()


def test_time_is_monotonic_clock(loop: asyncio.AbstractEventLoop) -> None:
    # asyncio's clock *is* time.monotonic(); code mixing the two must see a consistent clock.
    a = time.monotonic()
    t = loop.time()
    b = time.monotonic()
    assert a <= t <= b
    prev = loop.time()
    for _ in range(1000):
        now = loop.time()
        assert now >= prev
        prev = now


def test_time_has_sub_millisecond_resolution(loop: asyncio.AbstractEventLoop) -> None:
    first = loop.time()
    while True:
        t = loop.time()
        if t != first:
            break
    assert 0 < t - first < 1e-3


@pytest.mark.tideloop_only(reason="FIFO for equal deadlines is a documented tideloop guarantee")
def test_timers_due_at_the_same_time_are_fifo(loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    when = loop.time() + 0.002
    for i in range(300):
        loop.call_at(when, order.append, i)
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert order == list(range(300))


@pytest.mark.tideloop_only(reason="FIFO for equal deadlines is a documented tideloop guarantee")
def test_equal_deadlines_fifo_with_cancellations(loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    when = loop.time() + 0.002
    hs = [loop.call_at(when, order.append, i) for i in range(300)]
    for h in hs[1::3]:
        h.cancel()
    loop.call_later(0.01, loop.stop)
    run_bounded(loop)
    assert order == [i for i in range(300) if i % 3 != 1]


@pytest.mark.parametrize("how", ["subclass", "instance"])
def test_overridden_time_is_the_schedulers_clock(loop_kind: str, loop_factory: Any,
                                                 how: str) -> None:
    import tideloop

    base: Any = asyncio.SelectorEventLoop if loop_kind == "asyncio" else tideloop.EventLoop

    def offset_clock() -> float:
        return time.monotonic() + 1000.0

    if how == "subclass":
        class OffsetLoop(base):  # type: ignore[misc, valid-type]
            def time(self) -> float:
                return offset_clock()

        loop = OffsetLoop()
    else:
        loop = base()
        loop.time = offset_clock
    try:
        h = loop.call_later(5, _cb)
        assert 4.0 < h.when() - loop.time() <= 5.0
        h.cancel()

        async def main() -> str:
            try:
                async with asyncio.timeout(0.01):  # deadline = loop.time() + 0.01
                    await asyncio.sleep(10)
            except TimeoutError:
                return "timed out"
            return "no timeout"

        task = loop.create_task(main())
        guard = loop.call_later(3, loop.stop)
        try:
            assert loop.run_until_complete(task) == "timed out"
        finally:
            guard.cancel()
            if not task.done():
                task.cancel()
                loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    finally:
        loop.close()


@pytest.mark.parametrize("args", [(1, "x"), [1, "x"], ()], ids=["tuple", "list", "empty"])
def test_handle_runs_its_callback_with_any_args_sequence(loop: asyncio.AbstractEventLoop,
                                                         args: Any) -> None:
    # Handles made by the loop hold tuples; one built by hand may hold any sequence, as
    # asyncio's Handle allows (it calls callback(*args)).
    seen = []
    handle_cls = type(loop.call_soon(_cb))
    handle_cls(lambda *a: seen.append(a), args, loop)._run()
    assert seen == [tuple(args)]


@pytest.mark.tideloop_only("the compiled core stores LoopBase's attributes in C slots")
def test_compiled_loop_keeps_no_instance_dict(loop: asyncio.AbstractEventLoop) -> None:
    # Python 3.13 specializes `loop.call_soon` attribute loads only while the loop instance has
    # no __dict__; an attribute that LoopBase sets without a slot in _core.pxd would create one.
    if not tideloop.COMPILED:
        pytest.skip("the interpreted core keeps attributes in the instance dict")
    loop.call_later(0.001, _cb)
    loop.run_until_complete(asyncio.sleep(0.002))
    assert vars(loop) == {}


# Every shape of call_soon/call_soon_threadsafe call: the compiled core's C entries take
# `callback, *args, context=` themselves and hand any other shape to Cython's method ("C entries
# for call_soon" in _core.py), so each shape is run on every loop against asyncio's results.
def _schedule_all_shapes(loop: asyncio.AbstractEventLoop, method: str, seen: list[Any]) -> None:
    schedule = getattr(loop, method)
    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx")
    built_key = "".join(["con", "text"])  # equal to "context", but not the interned string

    def record(*args: Any) -> None:
        seen.append((var.get(), args))

    var.set("caller")
    schedule(record)
    schedule(record, 1)
    schedule(record, 1, "two", None, 4.0)
    schedule(record, 5, context=ctx)
    schedule(record, context=None)  # None: a copy of the caller's context, as without it
    schedule(record, 6, **{built_key: ctx})
    type(loop).call_soon(loop, record, 7, context=ctx)  # unbound, through the class
    schedule(callback=record)  # callback by keyword: asyncio accepts it
    for bad in (lambda: schedule(), lambda: schedule(record, ctx=ctx),
                lambda: schedule(record, context=ctx, extra=1)):
        with pytest.raises(TypeError):
            bad()


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe"])
def test_every_call_shape_schedules_as_asyncio(loop: asyncio.AbstractEventLoop,
                                               method: str) -> None:
    seen: list[Any] = []
    contextvars.copy_context().run(_schedule_all_shapes, loop, method, seen)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == [("caller", ()), ("caller", (1,)), ("caller", (1, "two", None, 4.0)),
                    ("ctx", (5,)), ("caller", ()), ("ctx", (6,)), ("ctx", (7,)),
                    ("caller", ())]


def test_unbound_call_soon_on_a_non_loop_raises(loop: asyncio.AbstractEventLoop) -> None:
    # asyncio fails on the missing attribute; the compiled core's entry must fail as cleanly
    # (its work reads the loop's C fields, which another object does not have).
    for method in ("call_soon", "call_soon_threadsafe"):
        with pytest.raises((TypeError, AttributeError)):
            getattr(type(loop), method)(object(), _cb)


def test_a_subclass_override_reaches_the_loop_through_super(loop_factory: Any) -> None:
    probe = loop_factory()
    base = type(probe)
    probe.close()
    calls: list[str] = []

    class Counting(base):  # type: ignore[valid-type,misc]
        def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:
            calls.append(getattr(callback, "__qualname__", type(callback).__name__))
            return super().call_soon(callback, *args, context=context)

    loop = Counting()
    try:
        async def main() -> str:
            await asyncio.sleep(0)
            return "done"

        assert loop.run_until_complete(main()) == "done"
    finally:
        loop.close()
    assert calls  # asyncio's Task scheduled its steps through the override
