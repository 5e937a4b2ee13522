"""The Ray backend: the same Pool items run on Ray actors, each with a tideloop loop of its own.

Invariant: an actor holds at most two batches of ``concurrency`` items; every batch's reply
list answers each of its items exactly once, and a batch whose actor died (or whose call failed
for any other reason than our own cancellation) fails its items with ``WorkerLost``.
When the Pool starts Ray itself, the node is kept on 127.0.0.1 with no dashboard.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._common import PICKLE_PROTOCOL, WorkerLost, _new_loop, pack_error, unpack_error
from ._wire import CANCELLED, ERR, OK, STAR_ARGS, STAR_ONE

if TYPE_CHECKING:
    from ._pool import Pool, _Item


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "Pool(backend='ray') needs Ray: pip install 'tideloop[ray]'"
        ) from exc
    return ray


class RayActorImpl:
    """Body of the Ray actor (wrapped by ``ray.remote`` at first use, so Ray stays optional).

    Ray runs the async methods on its own asyncio loop; the items themselves run on a tideloop
    loop in a thread of this actor, at most ``concurrency`` at once.
    """

    def __init__(self, init_blob: bytes, concurrency: int) -> None:
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="tideloop-ray-worker")
        self.thread.start()
        self.concurrency = concurrency
        self.fn_cache: dict[bytes, Callable[..., Any]] = {}
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.init_error: Any = None
        try:
            initializer, initargs = pickle.loads(init_blob)
            if initializer is not None:
                fut = asyncio.run_coroutine_threadsafe(
                    self._init(initializer, initargs), self.loop
                )
                fut.result()
        except BaseException as exc:
            self.init_error = pack_error(exc)

    async def _init(self, initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
        self.sem = asyncio.Semaphore(self.concurrency)
        r = initializer(*initargs)
        if asyncio.iscoroutine(r) or isinstance(r, asyncio.Future):
            await r

    def ping(self) -> tuple[int, Any]:
        return os.getpid(), self.init_error

    async def run_batch(self, batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if self.init_error is not None:
            # A replacement actor whose initializer failed: its items fail with that error.
            return [(ERR, b[0], self.init_error) for b in batch]
        cf = asyncio.run_coroutine_threadsafe(self._run_batch(batch), self.loop)
        try:
            return await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            cf.cancel()
            raise

    def cancel_items(self, iids: list[int]) -> None:
        def cancel() -> None:
            for iid in iids:
                task = self.tasks.get(iid)
                if task is not None:
                    task.cancel()

        self.loop.call_soon_threadsafe(cancel)

    async def _run_batch(self, batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not hasattr(self, "sem"):
            self.sem = asyncio.Semaphore(self.concurrency)
        tasks = []
        for iid, fn_bytes, args_bytes, star in batch:
            task = asyncio.ensure_future(self._run_one(fn_bytes, args_bytes, star))
            self.tasks[iid] = task
            tasks.append((iid, task))
        replies: list[tuple[Any, ...]] = []
        try:
            await asyncio.wait([t for _, t in tasks])
        except asyncio.CancelledError:
            for _, t in tasks:
                t.cancel()
            await asyncio.wait([t for _, t in tasks])
        for iid, t in tasks:
            self.tasks.pop(iid, None)
            if t.cancelled():
                replies.append((CANCELLED, iid))
                continue
            exc = t.exception()
            if exc is not None:
                replies.append((ERR, iid, pack_error(exc)))
            else:
                kind, payload = t.result()
                replies.append((kind, iid, payload))
        return replies

    async def _run_one(self, fn_bytes: bytes, args_bytes: bytes, star: int) -> tuple[Any, ...]:
        async with self.sem:
            fn = self.fn_cache.get(fn_bytes)
            if fn is None:
                fn = pickle.loads(fn_bytes)
                self.fn_cache[fn_bytes] = fn
            args = pickle.loads(args_bytes)
            if star == STAR_ONE:
                r = fn(args)
            elif star == STAR_ARGS:
                r = fn(*args)
            else:
                r = fn(*args[0], **args[1])
            if asyncio.iscoroutine(r) or isinstance(r, asyncio.Future):
                r = await r
            try:
                return (OK, pickle.dumps(r, PICKLE_PROTOCOL))
            except Exception as exc:
                err = pickle.PicklingError(
                    f"the result ({type(r).__name__}) cannot be pickled to send it back: {exc}"
                )
                err.__cause__ = exc
                return (ERR, pack_error(err))


_ACTOR_CLASS: Any = None


def _actor_class(ray: Any) -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = ray.remote(RayActorImpl)
    return _ACTOR_CLASS


class _Actor:
    __slots__ = ("handle", "index", "inflight", "batches", "sent", "accepting", "dead", "pid")

    def __init__(self, handle: Any, index: int) -> None:
        self.handle = handle
        self.index = index
        self.inflight: dict[int, _Item] = {}
        self.batches = 0
        self.sent = 0
        self.accepting = True
        self.dead = False
        self.pid = 0


class RayBackend:
    def __init__(
        self,
        pool: Pool,
        processes: int,
        concurrency: int,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        max_tasks: int | None,
        address: str | None,
    ) -> None:
        self.ray = _import_ray()
        self.pool = pool
        self.processes = processes
        self.concurrency = concurrency
        self.max_tasks = max_tasks
        self.address = address
        self.broken: BaseException | None = None
        self.actors: list[_Actor] = []
        self.stopping = False
        self._owns_ray = False
        self._ids = itertools.count()
        self._kicked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        from ray import cloudpickle

        try:
            self._init_blob = cloudpickle.dumps((initializer, tuple(initargs)))
        except Exception as exc:
            raise pickle.PicklingError(
                f"the initializer or its initargs cannot be pickled: {exc}"
            ) from exc

    def dumps_fn(self, fn: Callable[..., Any]) -> bytes:
        # By value where needed: a Ray worker cannot import the driver's __main__.
        from ray import cloudpickle

        return cloudpickle.dumps(fn)  # type: ignore[no-any-return]

    def start(self) -> None:
        ray = self.ray
        self._loop = asyncio.get_running_loop()
        if not ray.is_initialized():
            if self.address is None:
                # A private local node: never listen on the machine's external interface.
                ray.init(_node_ip_address="127.0.0.1", include_dashboard=False,
                         configure_logging=False, log_to_driver=True)
            else:
                ray.init(address=self.address)
            self._owns_ray = True
        for i in range(self.processes):
            self._spawn(i)

    def _spawn(self, index: int) -> _Actor:
        handle = _actor_class(self.ray).options(
            max_concurrency=max(1000, 4 * self.concurrency)
        ).remote(self._init_blob, self.concurrency)
        actor = _Actor(handle, index)
        self.actors.append(actor)
        return actor

    async def wait_ready(self) -> None:
        for actor in list(self.actors):
            try:
                pid, init_error = await actor.handle.ping.remote()
            except self.ray.exceptions.RayActorError as exc:
                raise WorkerLost(f"Ray actor {actor.index} died while starting: {exc}") from exc
            actor.pid = pid
            if init_error is not None:
                self.broken = unpack_error(init_error)
                raise self.broken

    def kick(self) -> None:
        if not self._kicked and self._loop is not None:
            self._kicked = True
            self._loop.call_soon(self._dispatch)

    def _room(self, actor: _Actor) -> int:
        room = 2 * self.concurrency - len(actor.inflight)
        if self.max_tasks is not None:
            room = min(room, self.max_tasks - actor.sent)
        return max(room, 0)

    def _dispatch(self) -> None:
        self._kicked = False
        if self.stopping or self.broken is not None:
            return
        for actor in list(self.actors):
            if not actor.accepting or actor.dead:
                continue
            room = self._room(actor)
            while room > 0:
                items = self.pool._take(min(room, self.concurrency))
                if not items:
                    return
                room -= len(items)
                self._send(actor, items)

    def _send(self, actor: _Actor, items: list[_Item]) -> None:
        batch = []
        for item in items:
            iid = next(self._ids)
            item.where = (actor, iid)
            actor.inflight[iid] = item
            batch.append((iid, item.fn_bytes, item.args_bytes, item.star))
        actor.sent += len(items)
        actor.batches += 1
        if self.max_tasks is not None and actor.sent >= self.max_tasks:
            actor.accepting = False
            self._spawn(actor.index)
        ref = actor.handle.run_batch.remote(batch)
        task = asyncio.ensure_future(self._await_batch(actor, ref, [b[0] for b in batch]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_batch(self, actor: _Actor, ref: Any, iids: list[int]) -> None:
        ray = self.ray
        try:
            replies = await ref
        except Exception as exc:
            lost = isinstance(exc, ray.exceptions.RayActorError)
            for iid in iids:
                item = actor.inflight.pop(iid, None)
                if item is None:
                    continue
                err = WorkerLost(
                    f"Ray actor {actor.index} (pid {actor.pid}) "
                    f"{'died' if lost else f'failed ({exc!r})'} while running item "
                    f"{item.index} of {item.job.name}",
                    item=item.index,
                    pid=actor.pid,
                )
                err.__cause__ = exc
                item.job.fail(item, err)
            if lost:
                self._actor_lost(actor)
        else:
            for reply in replies:
                item = actor.inflight.pop(reply[1], None)
                if item is not None:
                    item.job.deliver(item, reply[0], reply[2] if len(reply) > 2 else None)
        actor.batches -= 1
        if not actor.accepting and not actor.inflight and not actor.dead:
            self._retire(actor)
        self.kick()

    def _actor_lost(self, actor: _Actor) -> None:
        if actor.dead:
            return
        actor.dead = True
        if actor in self.actors:
            self.actors.remove(actor)
        if not self.stopping and actor.accepting:
            self._spawn(actor.index)

    def _retire(self, actor: _Actor) -> None:
        actor.dead = True
        if actor in self.actors:
            self.actors.remove(actor)
        self.ray.kill(actor.handle)

    def cancel_items(self, items: list[_Item]) -> None:
        by_actor: dict[int, tuple[_Actor, list[int]]] = {}
        for item in items:
            if item.where is None:
                continue
            actor, iid = item.where
            if iid in actor.inflight and not actor.dead:
                by_actor.setdefault(id(actor), (actor, []))[1].append(iid)
        for actor, iids in by_actor.values():
            actor.handle.cancel_items.remote(iids)

    def terminate(self) -> None:
        self.stopping = True
        for actor in list(self.actors):
            if not actor.dead:
                actor.dead = True
                self.ray.kill(actor.handle)

    def reap_now(self) -> None:
        self.terminate()
        self.actors.clear()
        if self._owns_ray:
            self.ray.shutdown()

    async def shutdown(self, timeout: float) -> None:
        self.terminate()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        self.actors.clear()
        if self._owns_ray:
            self.ray.shutdown()
