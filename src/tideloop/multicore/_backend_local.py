"""The local backend: worker processes on this machine, fed over pipes watched by the caller's loop.

Invariant: a worker holds at most ``credit`` items (twice its concurrency, so its next items are
already in its pipe when one finishes); every item sent is in that worker's ``inflight`` until its
reply arrives, and when the process is reaped whatever is still there fails with ``WorkerLost``.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ._common import PICKLE_PROTOCOL, WorkerLost, describe_exit, unpack_error
from ._spawn import ProcessHandle, preparation_data
from ._wire import CALL, CANCEL, INIT_ERROR, READY, STOP, Channel

if TYPE_CHECKING:
    from ._pool import Pool, _Item

# A worker that dies before it is ready this many times in a row means the pool cannot work
# (a crash on import, a broken interpreter): fail calls instead of respawning forever.
_MAX_STARTUP_FAILURES = 3


class _Worker:
    __slots__ = (
        "handle", "chan", "inflight", "sent", "accepting", "ready", "index", "pid", "replaced",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.inflight: dict[int, _Item] = {}
        self.sent = 0
        self.accepting = True
        self.ready = False
        self.replaced = False
        self.handle: ProcessHandle
        self.chan: Channel
        self.pid = 0


class LocalBackend:
    def __init__(
        self,
        pool: Pool,
        processes: int,
        concurrency: int,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        max_tasks: int | None,
    ) -> None:
        self.pool = pool
        self.processes = processes
        self.concurrency = concurrency
        self.credit = concurrency * 2
        self.max_tasks = max_tasks
        self.broken: BaseException | None = None
        self.workers: list[_Worker] = []
        self.stopping = False
        self._ids = itertools.count()
        self._kicked = False
        self._startup_failures = 0
        self._ready_waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        config = {
            "initializer": initializer,
            "initargs": tuple(initargs),
            "concurrency": concurrency,
            "max_tasks": max_tasks,
        }
        try:
            self._config_blob = pickle.dumps(config, PICKLE_PROTOCOL)
        except Exception as exc:
            raise pickle.PicklingError(
                f"the initializer or its initargs cannot be pickled to send them to the "
                f"workers: {exc}"
            ) from exc
        self._prep = preparation_data()

    def dumps_fn(self, fn: Callable[..., Any]) -> bytes:
        return pickle.dumps(fn, PICKLE_PROTOCOL)

    # -- processes -----------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for i in range(self.processes):
            self._spawn(i)

    def _spawn(self, index: int) -> None:
        assert self._loop is not None
        w = _Worker(index)
        w.handle = ProcessHandle()
        w.pid = w.handle.pid
        w.chan = Channel(
            self._loop,
            w.handle.from_child,
            w.handle.to_child,
            partial(self._on_messages, w),
            partial(self._on_eof, w),
        )
        w.chan.send([("boot", self._prep, "pool", self._config_blob)])
        w.handle.watch(self._loop, partial(self._on_exit, w))
        self.workers.append(w)

    async def wait_ready(self) -> None:
        while True:
            if self.broken is not None:
                raise self.broken
            if all(w.ready for w in self.workers if w.accepting):
                return
            self._ready_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._ready_waiter
            finally:
                self._ready_waiter = None

    def _wake_ready(self) -> None:
        if self._ready_waiter is not None and not self._ready_waiter.done():
            self._ready_waiter.set_result(None)

    # -- dispatch ------------------------------------------------------------------------------
    def kick(self) -> None:
        if not self._kicked and self._loop is not None:
            self._kicked = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._kicked = False
        if self.stopping or self.broken is not None:
            return
        open_workers = [w for w in self.workers if w.accepting]
        rooms = [self._room(w) for w in open_workers]
        total = sum(rooms)
        if total == 0:
            return
        items = self.pool._take(total)
        if not items:
            return
        n = len(open_workers)
        batches: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
        ids = self._ids
        i = 0
        # Round-robin one item at a time, so a short call still spreads over every worker.
        for item in items:
            while rooms[i] == 0:  # ends: len(items) <= sum(rooms)
                i = (i + 1) % n
            rooms[i] -= 1
            w = open_workers[i]
            iid = next(ids)
            item.where = (w, iid)
            w.inflight[iid] = item
            batches[i].append((CALL, iid, item.fn_bytes, item.args_bytes, item.star))
            i = (i + 1) % n
        for w, batch in zip(open_workers, batches, strict=True):
            if not batch:
                continue
            if not w.chan.send(batch):
                # The worker died and we have not seen it yet (EPIPE): it never got these
                # items, so they go back to their calls and on to another worker.
                w.accepting = False
                for msg in batch:
                    item = w.inflight.pop(msg[1])
                    item.where = None
                    item.job.requeue(item)
                continue
            w.sent += len(batch)
            if self.max_tasks is not None and w.sent >= self.max_tasks:
                # It leaves after these; start its successor now so no capacity is lost.
                w.accepting = False
                self._replace(w)

    def _room(self, w: _Worker) -> int:
        room = self.credit - len(w.inflight)
        if self.max_tasks is not None:
            room = min(room, self.max_tasks - w.sent)
        return max(room, 0)

    def cancel_items(self, items: list[_Item]) -> None:
        by_worker: dict[int, tuple[_Worker, list[tuple[Any, ...]]]] = {}
        for item in items:
            if item.where is None:
                continue
            w, iid = item.where
            if iid in w.inflight:
                by_worker.setdefault(id(w), (w, []))[1].append((CANCEL, iid))
        for w, msgs in by_worker.values():
            w.chan.send(msgs)

    # -- events from workers -------------------------------------------------------------------
    def _on_messages(self, w: _Worker, messages: list[tuple[Any, ...]]) -> None:
        freed = False
        for m in messages:
            kind = m[0]
            if kind == READY:
                w.ready = True
                self._startup_failures = 0
                self._wake_ready()
                continue
            if kind == INIT_ERROR:
                if self.broken is None:
                    self.broken = unpack_error(m[1])
                self._wake_ready()
                continue
            item = w.inflight.pop(m[1], None)
            if item is not None:
                freed = True
                item.job.deliver(item, kind, m[2] if len(m) > 2 else None)
        if freed:
            self.kick()

    def _on_eof(self, w: _Worker, exc: BaseException | None) -> None:
        w.accepting = False
        w.handle.check_soon()

    def _on_exit(self, w: _Worker, returncode: int) -> None:
        w.chan.drain()  # replies written just before exiting still count
        w.chan.close()
        w.accepting = False
        if w in self.workers:
            self.workers.remove(w)
        if not w.ready and not self.stopping:
            self._startup_failures += 1
            if self.broken is None and self._startup_failures >= _MAX_STARTUP_FAILURES:
                self.broken = WorkerLost(
                    f"worker processes keep dying during start-up (last: pid {w.pid} "
                    f"{describe_exit(returncode)})",
                    pid=w.pid,
                    exitcode=returncode,
                )
        lost = list(w.inflight.values())
        w.inflight.clear()
        for item in lost:
            if self.broken is not None and not w.ready:
                exc: BaseException = self.broken
            else:
                exc = WorkerLost(
                    f"worker {w.index} (pid {w.pid}) {describe_exit(returncode)} while running "
                    f"item {item.index} of {item.job.name}",
                    item=item.index,
                    pid=w.pid,
                    exitcode=returncode,
                )
            item.job.fail(item, exc)
        if self.broken is not None:
            self._fail_everything(self.broken)
        elif not self.stopping:
            self._replace(w)
        self._wake_ready()
        self.kick()

    def _replace(self, w: _Worker) -> None:
        if w.replaced or self.stopping or self.broken is not None:
            return
        w.replaced = True
        self._spawn(w.index)

    def _fail_everything(self, exc: BaseException) -> None:
        for w in self.workers:
            for item in list(w.inflight.values()):
                item.job.fail(item, exc)
            w.inflight.clear()
        for job in list(self.pool._jobs):
            job._fail_job(exc)

    # -- shutdown ------------------------------------------------------------------------------
    def terminate(self) -> None:
        self.stopping = True
        for w in list(self.workers):
            w.handle.kill()

    def reap_now(self) -> None:
        self.stopping = True
        for w in list(self.workers):
            w.handle.reap_blocking()  # may run _on_exit, which drops w from self.workers
            w.chan.close()
            if w in self.workers:
                self.workers.remove(w)

    async def shutdown(self, timeout: float) -> None:
        self.stopping = True
        for w in list(self.workers):
            w.chan.send([(STOP,)])
        waits = [w.handle.wait(timeout) for w in list(self.workers)]
        await asyncio.gather(*waits)
        for w in list(self.workers):
            if w.handle.returncode is None:
                w.handle.kill()
        await asyncio.gather(*(w.handle.wait(timeout) for w in list(self.workers)))
        for w in list(self.workers):
            # Still not reaped (cannot happen after SIGKILL unless the kernel is stuck).
            w.handle.reap_blocking()
            w.chan.close()
            if w in self.workers:
                self.workers.remove(w)
