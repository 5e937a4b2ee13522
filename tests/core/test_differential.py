"""Differential test: random schedules run on asyncio and on tideloop must produce the same order.

Invariant: for any program of call_soon / call_soon_threadsafe / call_later / call_at / cancel /
tasks with sleeps, the sequence of events on tideloop (both reactors) equals asyncio's.

Two harnesses. The virtual-clock one (most examples) replaces each loop's clock by a counter that
jumps to the next deadline whenever the loop would sleep, so any schedule -- delays of a few ms plus
a unique jitter, made from any callback -- is deterministic, and runs take no wall time. It touches
three private names (asyncio's ``loop.time``/``_selector``, tideloop's ``_core._monotonic`` and
``_reactor``), all read here only.

The real-clock one runs on the machine's clock: programs are built to be deterministic in an
*ideal* run where callbacks take no time (every timer and real sleep targets its own slot, SLOT
apart), and a run is compared only if it behaved like the ideal run -- each timer fired with no
other work pending and no earlier target outstanding. A run disturbed by a stalled machine is
repeated, never compared.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _support import run_bounded, virtual_clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tideloop

SLOT = 0.003  # seconds between two timer targets: far above a phase's zero-time work
MAX_SLOTS = 8
JITTER = 5e-6  # unique per target: no two deadlines are ever equal

# A program is a list of actions:
#   ("soon", id, body)       loop.call_soon(run body)
#   ("threadsafe", id, body) loop.call_soon_threadsafe(run body)
#   ("at", id, slot, body)   loop.call_at(target(slot), run body)
#   ("cancel", id)           cancel the handle or task made by action `id`, if it exists
#   ("task", id, steps)      loop.create_task(...) with steps ("yield",) | ("sleep", slot) |
#                            ("do", action)


@st.composite
def programs(draw: st.DrawFn) -> tuple[list[Any], int]:
    slots = draw(st.permutations(list(range(1, MAX_SLOTS + 1))))
    free = list(slots)
    next_id = [0]
    budget = [draw(st.integers(4, 24))]

    def new_id() -> int:
        next_id[0] += 1
        return next_id[0]

    def action(depth: int) -> Any:
        budget[0] -= 1
        kinds = ["soon", "threadsafe", "cancel"]
        if depth < 3 and budget[0] > 0:
            kinds += ["soon", "task", "task"]
            if free:
                kinds += ["at", "at"]
        kind = draw(st.sampled_from(kinds))
        if kind == "cancel":
            return ("cancel", draw(st.integers(1, max(1, next_id[0] + 2))))
        i = new_id()
        if kind in ("soon", "threadsafe"):
            return (kind, i, body(depth + 1))
        if kind == "at":
            return ("at", i, free.pop(), body(depth + 1))
        steps: list[Any] = []
        for _ in range(draw(st.integers(0, 4))):
            step = draw(st.sampled_from(["yield", "sleep", "do"] if budget[0] > 0 else ["yield"]))
            if step == "sleep" and free:
                steps.append(("sleep", free.pop()))
            elif step == "do":
                steps.append(("do", action(depth + 1)))
            else:
                steps.append(("yield",))
        return ("task", i, steps)

    def body(depth: int) -> list[Any]:
        if depth >= 3 or budget[0] <= 0:
            return []
        return [action(depth) for _ in range(draw(st.integers(0, 3)))]

    prog = [action(0) for _ in range(draw(st.integers(1, 5)))]
    used = [s for s in slots if s not in free]
    return prog, max(used, default=0)


class Disturbed(Exception):
    """The run did not behave like the ideal run (the machine stalled): do not compare it."""


class Interpreter:
    """Runs one program on one loop and records the order of events."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: list[str] = []
        self.handles: dict[int, Any] = {}
        self.state: dict[int, str] = {}  # "pending" / "ran" / "cancelled" / "sleeping" / ...
        self.busy = 0  # zero-time work outstanding (ready callbacks, runnable tasks)
        self.pending: list[float] = []  # heap of outstanding future targets
        self.phase = 0  # slot of the last future event that fired
        self.disturbed: list[str] = []
        self.t0 = 0.0

    def target(self, slot: int) -> float:
        return self.t0 + slot * SLOT + slot * JITTER

    def disturb(self, why: str) -> None:
        self.disturbed.append(why)

    def fire_future(self, when: float, slot: int) -> None:
        # Ideal run: a future event fires only when nothing else is pending and no earlier
        # target is outstanding.
        if self.busy != 0 or not self.pending or self.pending[0] != when:
            self.disturb(f"slot {slot} fired with busy={self.busy}")
        if when in self.pending:
            self.pending.remove(when)
            heapq.heapify(self.pending)
        self.phase = max(self.phase, slot)

    # -- actions ---------------------------------------------------------------------------

    def do(self, action: Any) -> None:
        kind = action[0]
        loop = self.loop
        if kind == "cancel":
            self.cancel(action[1])
        elif kind in ("soon", "threadsafe"):
            _, i, body = action
            schedule = loop.call_soon if kind == "soon" else loop.call_soon_threadsafe
            self.busy += 1
            self.state[i] = "pending"
            self.handles[i] = schedule(self.zero_time_cb, i, body)
        elif kind == "at":
            _, i, slot, body = action
            when = self.target(slot)
            if slot <= self.phase:  # a deadline in the past: due at the next iteration
                self.busy += 1
                self.state[i] = "pending"
                self.handles[i] = loop.call_at(when, self.zero_time_cb, i, body)
            else:
                if loop.time() >= when:
                    self.disturb(f"timer for slot {slot} scheduled too late")
                heapq.heappush(self.pending, when)
                self.state[i] = "timer"
                self.handles[i] = loop.call_at(when, self.timer_cb, i, slot, when, body)
        elif kind == "task":
            _, i, steps = action
            self.busy += 1
            self.state[i] = "active"
            task = loop.create_task(self.task(i, steps))
            task.add_done_callback(self.task_done)
            self.handles[i] = task
        else:  # pragma: no cover
            raise AssertionError(action)

    def cancel(self, i: int) -> None:
        h = self.handles.get(i)
        if h is None:
            return
        st_ = self.state.get(i)
        if isinstance(h, asyncio.Task):
            if h.done():
                return
            if h.cancel():
                self.events.append(f"cancel {i}")
                if st_ and st_.startswith("sleeping:"):
                    # The sleep's timer is cancelled: the task wakes at the next iteration.
                    when = float(st_.split(":", 1)[1])
                    if when in self.pending:
                        self.pending.remove(when)
                        heapq.heapify(self.pending)
                    self.state[i] = "active"
                    self.busy += 1
            return
        if st_ == "pending":
            self.busy -= 1
        elif st_ == "timer":
            when = h.when()
            if when in self.pending:
                self.pending.remove(when)
                heapq.heapify(self.pending)
        if st_ in ("pending", "timer"):
            self.events.append(f"cancel {i}")
        self.state[i] = "cancelled"
        h.cancel()

    # -- callbacks ---------------------------------------------------------------------------

    def zero_time_cb(self, i: int, body: list[Any]) -> None:
        self.busy -= 1
        self.state[i] = "ran"
        self.events.append(f"cb {i}")
        for a in body:
            self.do(a)

    def timer_cb(self, i: int, slot: int, when: float, body: list[Any]) -> None:
        self.fire_future(when, slot)
        self.state[i] = "ran"
        self.events.append(f"timer {i}")
        for a in body:
            self.do(a)

    def task_done(self, task: asyncio.Task[Any]) -> None:
        self.busy -= 1

    async def task(self, i: int, steps: list[Any]) -> None:
        self.events.append(f"task {i} start")
        try:
            for n, step in enumerate(steps):
                if step[0] == "yield":
                    await asyncio.sleep(0)
                elif step[0] == "sleep":
                    slot = step[1]
                    when = self.target(slot)
                    me = asyncio.current_task()
                    if slot <= self.phase or (me is not None and me.cancelling()):
                        await asyncio.sleep(0)
                    else:
                        delay = when - self.loop.time()
                        if delay <= 0:
                            self.disturb(f"task {i} sleep for slot {slot} started too late")
                            await asyncio.sleep(0)
                        else:
                            heapq.heappush(self.pending, when)
                            self.busy -= 1
                            self.state[i] = f"sleeping:{when}"
                            try:
                                await asyncio.sleep(delay)
                            finally:
                                if self.state[i] == f"sleeping:{when}":  # woken by its timer
                                    self.fire_future(when, slot)
                                    self.busy += 1
                                    self.state[i] = "active"
                else:
                    self.do(step[1])
                self.events.append(f"task {i} step {n}")
        except asyncio.CancelledError:
            self.events.append(f"task {i} cancelled")
            raise
        self.events.append(f"task {i} end")

    def stop(self, when: float, slot: int) -> None:
        self.fire_future(when, slot)
        self.loop.stop()

    def run(self, program: list[Any], last_slot: int) -> list[str]:
        loop = self.loop
        self.t0 = loop.time() + SLOT  # slot 0 is the start; slot 1 comes SLOT after it
        end_slot = last_slot + 1
        end = self.target(end_slot)
        heapq.heappush(self.pending, end)
        loop.call_at(end, self.stop, end, end_slot)

        def start() -> None:
            self.busy -= 1
            for a in program:
                self.do(a)

        self.busy += 1
        loop.call_soon(start)
        run_bounded(loop, timeout=5.0)
        # leftovers (tasks cancelled at the very end) are not part of the comparison
        for h in self.handles.values():
            if isinstance(h, asyncio.Task) and not h.done():
                h.cancel()
        if self.disturbed:
            raise Disturbed("; ".join(self.disturbed))
        return self.events


@contextmanager
def _reactor(name: str | None) -> Iterator[None]:
    old = os.environ.get("TIDELOOP_REACTOR")
    if name is None:
        os.environ.pop("TIDELOOP_REACTOR", None)
    else:
        os.environ["TIDELOOP_REACTOR"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TIDELOOP_REACTOR", None)
        else:
            os.environ["TIDELOOP_REACTOR"] = old


def run_on(kind: str, program: list[Any], last_slot: int) -> list[str]:
    if kind == "asyncio":
        loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
    else:
        with _reactor("poll" if kind == "tideloop-poll" else "epoll"):
            loop = tideloop.new_event_loop()
    gc.collect()
    gc.disable()  # a collection in the middle of a run is a stall we can avoid
    try:
        return Interpreter(loop).run(program, last_slot)
    finally:
        gc.enable()
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()


# The real-clock runs wait for real time and, on a loaded machine, are retried. A budget keeps
# the test bounded: past it, the remaining examples are not run; at least MIN_COMPARED must be.
REAL_CLOCK_BUDGET = 3.0
MIN_COMPARED = 2


def test_same_order_as_asyncio_real_clock(no_leaks: None) -> None:
    spent = [0.0]
    compared = [0]

    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(programs())
    def same_order(prog: tuple[list[Any], int]) -> None:
        program, last_slot = prog
        if spent[0] > REAL_CLOCK_BUDGET:
            return
        started = time.monotonic()
        try:
            for _attempt in range(3):
                try:
                    expected = run_on("asyncio", program, last_slot)
                    got = run_on("tideloop", program, last_slot)
                    got_poll = run_on("tideloop-poll", program, last_slot)
                except Disturbed:
                    continue  # the machine stalled longer than a slot: run it again
                assert got == expected, f"program: {program}"
                assert got_poll == expected, f"program: {program}"
                compared[0] += 1
                return
        finally:
            spent[0] += time.monotonic() - started

    same_order()
    assert compared[0] >= MIN_COMPARED, (
        f"only {compared[0]} programs ran undisturbed in {spent[0]:.1f} s")


# -- virtual clock -------------------------------------------------------------------------------


def _jitter(key: int) -> float:
    # Distinct for every key, and irrational enough that sums of delays never tie either.
    return ((key * 0.6180339887498949) % 1.0) * 1e-4


@st.composite
def virtual_programs(draw: st.DrawFn) -> list[Any]:
    """Like programs(), with relative delays: ("later", id, delay, body), ("at", id, offset,
    body) with offset from the program's start (may be in the past), and task steps
    ("sleep", delay) where delay may be zero or negative."""
    next_id = [0]
    budget = [draw(st.integers(4, 30))]

    def new_id() -> int:
        next_id[0] += 1
        return next_id[0]

    def delay(key: int) -> float:
        return draw(st.integers(-1, 6)) * 1e-3 + _jitter(key)

    def action(depth: int) -> Any:
        budget[0] -= 1
        kinds = ["soon", "threadsafe", "cancel"]
        if depth < 4 and budget[0] > 0:
            kinds += ["soon", "later", "later", "at", "task", "task"]
        kind = draw(st.sampled_from(kinds))
        if kind == "cancel":
            return ("cancel", draw(st.integers(1, max(1, next_id[0] + 2))))
        i = new_id()
        if kind in ("soon", "threadsafe"):
            return (kind, i, body(depth + 1))
        if kind in ("later", "at"):
            return (kind, i, delay(i), body(depth + 1))
        steps: list[Any] = []
        for n in range(draw(st.integers(0, 4))):
            step = draw(st.sampled_from(["yield", "sleep", "sleep", "do"]
                                        if budget[0] > 0 else ["yield", "sleep"]))
            if step == "sleep":
                steps.append(("sleep", delay(1000 + 10 * i + n)))
            elif step == "do":
                steps.append(("do", action(depth + 1)))
            else:
                steps.append(("yield",))
        return ("task", i, steps)

    def body(depth: int) -> list[Any]:
        if depth >= 4 or budget[0] <= 0:
            return []
        return [action(depth) for _ in range(draw(st.integers(0, 3)))]

    return [action(0) for _ in range(draw(st.integers(1, 6)))]


class VirtualInterpreter:
    """Runs a virtual program; the loop stops when it has nothing left to wait for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: list[str] = []
        self.handles: dict[int, Any] = {}
        self.t0 = 0.0

    def do(self, action: Any) -> None:
        kind = action[0]
        loop = self.loop
        if kind == "cancel":
            h = self.handles.get(action[1])
            if h is not None:
                cancelled = h.cancel()
                self.events.append(f"cancel {action[1]} -> {cancelled}")
        elif kind == "soon":
            self.handles[action[1]] = loop.call_soon(self.cb, "cb", action[1], action[2])
        elif kind == "threadsafe":
            self.handles[action[1]] = loop.call_soon_threadsafe(self.cb, "ts", action[1],
                                                                action[2])
        elif kind == "later":
            self.handles[action[1]] = loop.call_later(action[2], self.cb, "later", action[1],
                                                      action[3])
        elif kind == "at":
            self.handles[action[1]] = loop.call_at(self.t0 + action[2], self.cb, "at",
                                                   action[1], action[3])
        else:
            self.handles[action[1]] = loop.create_task(self.task(action[1], action[2]))

    def cb(self, what: str, i: int, body: list[Any]) -> None:
        self.events.append(f"{what} {i}")
        for a in body:
            self.do(a)

    async def task(self, i: int, steps: list[Any]) -> str:
        self.events.append(f"task {i} start")
        try:
            for n, step in enumerate(steps):
                if step[0] == "yield":
                    await asyncio.sleep(0)
                elif step[0] == "sleep":
                    await asyncio.sleep(step[1])
                else:
                    self.do(step[1])
                self.events.append(f"task {i} step {n}")
        except asyncio.CancelledError:
            self.events.append(f"task {i} cancelled")
            raise
        self.events.append(f"task {i} end")
        return "done"

    def run(self, program: list[Any]) -> list[str]:
        self.t0 = self.loop.time()

        def start() -> None:
            for a in program:
                self.do(a)

        self.loop.call_soon(start)
        self.loop.run_forever()
        for i, h in sorted(self.handles.items()):
            if isinstance(h, asyncio.Task):
                state = "cancelled" if h.cancelled() else ("done" if h.done() else "pending")
                self.events.append(f"task {i} final {state}")
        return self.events


def run_virtual(kind: str, program: list[Any]) -> list[str]:
    if kind == "asyncio":
        loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
    else:
        with _reactor("poll" if kind == "tideloop-poll" else "epoll"):
            loop = tideloop.new_event_loop()
    try:
        with virtual_clock(loop):
            events = VirtualInterpreter(loop).run(program)
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        return events
    finally:
        loop.close()


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(virtual_programs())
def test_same_order_as_asyncio_virtual_clock(no_leaks: None, program: list[Any]) -> None:
    expected = run_virtual("asyncio", program)
    assert run_virtual("tideloop", program) == expected, f"program: {program}"
    assert run_virtual("tideloop-poll", program) == expected, f"program: {program}"
