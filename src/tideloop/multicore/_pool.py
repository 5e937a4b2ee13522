"""``Pool``: the user-facing API, and the jobs that turn calls into items and items into results.

Invariant: a job pulls from its iterable only when a backend asks for items (so memory stays
bounded by the backends' credits plus an ordered-results window), and every item a job hands out
comes back exactly once: as a result, an error, a cancellation or a ``WorkerLost``.
"""

from __future__ import annotations

import asyncio
import pickle
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sized
from typing import Any, Protocol

from ._common import PICKLE_PROTOCOL, ErrorBlob, unpack_error, usable_cpus
from ._progress import Progress
from ._wire import CANCELLED, ERR, OK, STAR_ARGS, STAR_KW, STAR_ONE

_MAP = 0
_IMAP = 1
_UNORDERED = 2


class Backend(Protocol):
    """What a Pool needs from a place that runs items (local processes, Ray actors).

    A backend pulls items with ``pool._take(n)`` whenever it has capacity and after ``kick()``,
    reports each one back exactly once through ``item.job.deliver(item, kind, payload)`` or
    ``item.job.fail(item, exc)``, and cancels items handed to ``cancel_items`` (which then still
    report back, usually as CANCELLED).
    """

    processes: int
    broken: BaseException | None

    def dumps_fn(self, fn: Callable[..., Any]) -> bytes: ...
    def start(self) -> None: ...
    async def wait_ready(self) -> None: ...
    def kick(self) -> None: ...
    def cancel_items(self, items: list[_Item]) -> None: ...
    def terminate(self) -> None: ...
    def reap_now(self) -> None: ...
    async def shutdown(self, timeout: float) -> None: ...


class _Prepickled:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Item:
    __slots__ = ("job", "index", "fn_bytes", "args_bytes", "star", "where")

    def __init__(self, job: _Job, index: int, fn_bytes: bytes, args_bytes: bytes, star: int):
        self.job = job
        self.index = index
        self.fn_bytes = fn_bytes
        self.args_bytes = args_bytes
        self.star = star
        self.where: Any = None  # backend bookkeeping (worker handle, item id)


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _Job:
    """One call (map/starmap/apply/imap/imap_unordered): its source iterator and its results."""

    def __init__(
        self,
        pool: Pool,
        fn: Callable[..., Any],
        source: Iterable[Any],
        star: int,
        mode: int,
        window: int | None,
        what: str,
        total: int | None,
    ) -> None:
        self.pool = pool
        self.name = f"{what}({_fn_name(fn)})"
        try:
            self.fn_bytes = pool._backend.dumps_fn(fn)
        except Exception as exc:
            raise pickle.PicklingError(
                f"{self.name}: the function cannot be pickled to send it to a worker "
                f"(define it at module level): {exc}"
            ) from exc
        self.it: Iterator[Any] = iter(source)
        self.star = star
        self.mode = mode
        self.window = window
        self.taken = 0
        self.completed = 0
        self.consumed = 0  # results handed to the consumer (imap modes)
        self.exhausted = False
        self.finished = False  # no more deliveries matter (done, failed or cancelled)
        self.error: BaseException | None = None
        self.inflight: dict[int, _Item] = {}
        self.retry: deque[_Item] = deque()
        self.results: list[Any] = []
        self.ordered: dict[int, tuple[bool, Any]] = {}
        self.unordered: deque[tuple[bool, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.in_active = False
        self.progress = Progress(self.name, total) if pool._progress else None

    # -- supplying items -----------------------------------------------------------------------
    def requeue(self, item: _Item) -> None:
        """A backend could not deliver ``item`` (provably unsent): hand it out again first."""
        if self.finished:
            return
        self.retry.append(item)
        self.pool._activate(self)

    def take(self) -> _Item | None:
        if self.retry and not self.finished:
            return self.retry.popleft()
        if self.finished or self.exhausted:
            return None
        if self.window is not None and self.taken - self.consumed >= self.window:
            return None
        try:
            x = next(self.it)
        except StopIteration:
            self.exhausted = True
            self._check_complete()
            return None
        except Exception as exc:
            self._fail_job(exc)
            return None
        index = self.taken
        try:
            args_bytes = x.data if type(x) is _Prepickled else pickle.dumps(x, PICKLE_PROTOCOL)
        except Exception as exc:
            err = pickle.PicklingError(
                f"{self.name}: argument of item {index} ({type(x).__name__}) cannot be pickled "
                f"to send it to a worker: {exc}"
            )
            err.__cause__ = exc
            self._fail_job(err)
            return None
        item = _Item(self, index, self.fn_bytes, args_bytes, self.star)
        self.taken += 1
        self.inflight[index] = item
        return item

    # -- results -------------------------------------------------------------------------------
    def deliver(self, item: _Item, kind: int, payload: Any) -> None:
        if self.inflight.pop(item.index, None) is None or self.finished:
            return
        self._deliver(item, kind, payload)
        if self.pool._idle_waiter is not None:
            # Any completion may leave the pool idle, not only those that wake a consumer.
            self.pool._notify()

    def _deliver(self, item: _Item, kind: int, payload: Any) -> None:
        if kind == OK:
            try:
                value = pickle.loads(payload)
            except Exception as exc:
                err = pickle.UnpicklingError(
                    f"{self.name}: the result of item {item.index} cannot be unpickled in the "
                    f"parent: {exc!r}"
                )
                err.__cause__ = exc
                self._item_done(item.index, False, err)
                return
            self._item_done(item.index, True, value)
        elif kind == ERR:
            blob: ErrorBlob = payload
            self._item_done(item.index, False, unpack_error(blob))
        elif kind == CANCELLED:
            # Not asked for by us (we would be finished): the worker was told to stop.
            self._item_done(
                item.index, False, RuntimeError(f"{self.name}: item {item.index} was cancelled")
            )

    def fail(self, item: _Item, exc: BaseException) -> None:
        if self.inflight.pop(item.index, None) is None or self.finished:
            return
        self._item_done(item.index, False, exc)
        if self.pool._idle_waiter is not None:
            self.pool._notify()

    def _item_done(self, index: int, ok: bool, value: Any) -> None:
        self.completed += 1
        if self.progress is not None:
            self.progress.update(self.completed)
        if self.mode == _MAP:
            if not ok:
                self._fail_job(value)
                return
            results = self.results
            if index >= len(results):
                results.extend([None] * (index + 1 - len(results)))
            results[index] = value
            self._check_complete()
            return
        if self.mode == _IMAP:
            self.ordered[index] = (ok, value)
            if index == self.consumed:
                self._wake()
        else:
            self.unordered.append((ok, value))
            self._wake()
        if self.exhausted and self.completed == self.taken:
            self._wake()

    def _check_complete(self) -> None:
        if self.exhausted and self.completed == self.taken and not self.finished:
            if self.mode == _MAP:
                self._finish()
            self._wake()

    def _fail_job(self, exc: BaseException) -> None:
        if self.finished:
            return
        if self.mode == _MAP:
            self.error = exc
            self.cancel()
            self._wake()
        else:
            # Streamed modes raise at the consumer's position; stop taking more meanwhile.
            self.exhausted = True
            if self.mode == _IMAP:
                self.ordered[self.taken] = (False, exc)
                self.taken += 1
                self.completed += 1
            else:
                self.unordered.append((False, exc))
            self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)
        if self.pool._idle_waiter is not None:
            self.pool._notify()

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing more that can be sent without a consumer (what
        ``Pool.join`` waits for): an imap whose read-ahead window is full waits for its
        consumer, who may be the very task that is leaving the ``async with`` block."""
        if self.finished:
            return True
        if self.inflight:  # includes items waiting in `retry`
            return False
        return self.exhausted or (
            self.window is not None and self.taken - self.consumed >= self.window
        )

    def _finish(self) -> None:
        self.finished = True
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        self.pool._jobs.discard(self)

    def cancel(self) -> None:
        """Stop this job: take nothing more, cancel what workers hold, drop buffered results."""
        if self.finished:
            return
        self._finish()
        items = list(self.inflight.values())
        self.inflight.clear()
        self.retry.clear()
        self.ordered.clear()
        self.unordered.clear()
        if items:
            self.pool._backend.cancel_items(items)
        self._wake()

    # -- consuming -----------------------------------------------------------------------------
    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def result(self) -> list[Any]:
        try:
            while not self.finished:
                await self._wait()
        except BaseException:
            self.cancel()
            raise
        if self.error is not None:
            raise self.error
        return self.results

    async def next(self) -> Any:
        try:
            while True:
                if self.mode == _IMAP:
                    entry = self.ordered.pop(self.consumed, None)
                elif self.unordered:
                    entry = self.unordered.popleft()
                else:
                    entry = None
                if entry is not None:
                    self.consumed += 1
                    if self.window is not None:
                        self.pool._activate(self)
                    ok, value = entry
                    if not ok:
                        self.cancel()
                        raise value
                    return value
                if self.error is not None:
                    raise self.error
                if self.finished or (self.exhausted and self.consumed >= self.taken):
                    self._finish()
                    raise StopAsyncIteration
                await self._wait()
        except (asyncio.CancelledError, GeneratorExit):
            self.cancel()
            raise


class _ResultIterator:
    """``async for`` over an imap/imap_unordered call; the job starts on the first ``__anext__``."""

    def __init__(self, start: Callable[[], _Job]) -> None:
        self._start: Callable[[], _Job] | None = start
        self._job: _Job | None = None

    def __aiter__(self) -> _ResultIterator:
        return self

    async def __anext__(self) -> Any:
        if self._job is None:
            if self._start is None:
                raise StopAsyncIteration
            self._job, self._start = self._start(), None
        return await self._job.next()

    async def aclose(self) -> None:
        self._start = None
        if self._job is not None:
            self._job.cancel()

    def __del__(self) -> None:
        # `break` out of `async for` leaves the iterator to the garbage collector: stop the work.
        job = self._job
        if job is not None and not job.finished:
            try:
                job.cancel()
            except Exception:
                pass


class Pool:
    """Run coroutine functions (or plain functions) in worker processes, many at once per worker.

    ``processes`` workers (default: the CPU count) each run up to ``concurrency`` items at once
    on their own event loop. Use as ``async with Pool() as pool: ...`` or call ``close()`` then
    ``await join()``. ``backend="ray"`` runs the same API on Ray actors (``address`` selects the
    cluster, None starts or joins a local one).
    """

    def __init__(
        self,
        processes: int | None = None,
        *,
        concurrency: int = 16,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        backend: str = "local",
        progress: bool = False,
        address: str | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if processes is None:
            processes = usable_cpus()
        if processes < 1:
            raise ValueError("processes must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError("max_tasks_per_worker must be at least 1")
        self.processes = processes
        self.concurrency = concurrency
        self._progress = progress
        self._shutdown_timeout = shutdown_timeout
        self._active: deque[_Job] = deque()
        self._closed = False
        self._started = False
        self._jobs: set[_Job] = set()
        self._idle_waiter: asyncio.Future[None] | None = None
        self._backend: Backend
        if backend == "local":
            from ._backend_local import LocalBackend

            self._backend = LocalBackend(
                self, processes, concurrency, initializer, initargs, max_tasks_per_worker
            )
        elif backend == "ray":
            from ._backend_ray import RayBackend

            self._backend = RayBackend(
                self, processes, concurrency, initializer, initargs, max_tasks_per_worker,
                address,
            )
        else:
            raise ValueError(f"unknown backend {backend!r} (expected 'local' or 'ray')")

    # -- lifecycle -----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._closed:
            raise RuntimeError("the Pool is closed")
        if self._backend.broken is not None:
            raise self._backend.broken
        if not self._started:
            self._started = True
            self._backend.start()

    async def __aenter__(self) -> Pool:
        self._ensure_started()
        try:
            await self._backend.wait_ready()
        except BaseException:
            self.terminate()
            await self.join()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            # Ctrl-C / an error: cancel the calls, but let the workers cancel their items (so
            # their `finally` blocks run) within shutdown_timeout before anything is killed.
            self._closed = True
            self._cancel_jobs(f"the Pool's block was left by {exc_type.__name__}")
        try:
            await self.join()
        except BaseException:
            # Interrupted while waiting (a second Ctrl-C): kill and reap right now.
            self.terminate()
            self._backend.reap_now()
            raise

    def close(self) -> None:
        """Refuse new calls; workers stop once the calls already made have finished (``join``)."""
        self._closed = True

    def terminate(self) -> None:
        """Stop now: cancel every running call and kill the workers (``join`` reaps them)."""
        self._closed = True
        self._cancel_jobs("the Pool was terminated")
        if self._started:
            self._backend.terminate()

    def _cancel_jobs(self, why: str) -> None:
        for job in list(self._jobs):
            if not job.finished:
                job.error = RuntimeError(why)
                job.cancel()
                job._wake()

    async def join(self) -> None:
        """Wait for running calls (after ``close``) and then for every worker to exit."""
        if not self._closed:
            raise ValueError("call close() or terminate() before join()")
        while not all(j.idle for j in self._jobs):
            self._idle_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._idle_waiter
            finally:
                self._idle_waiter = None
        # What is left can never finish (a blocked imap): fail it rather than hang its consumer.
        self._cancel_jobs("the Pool was closed before this call finished")
        if self._started:
            await self._backend.shutdown(self._shutdown_timeout)

    def _notify(self) -> None:
        w = self._idle_waiter
        if w is not None and not w.done() and all(j.idle for j in self._jobs):
            w.set_result(None)

    # -- scheduling (called by backends) --------------------------------------------------------
    def _take(self, n: int) -> list[_Item]:
        out: list[_Item] = []
        active = self._active
        while len(out) < n and active:
            job = active[0]
            item = job.take()
            if item is None:
                active.popleft()
                job.in_active = False
                continue
            out.append(item)
            if len(active) > 1:
                active.rotate(-1)  # share the workers fairly between concurrent calls
        return out

    def _activate(self, job: _Job) -> None:
        if not job.in_active and not job.finished and (not job.exhausted or job.retry):
            job.in_active = True
            self._active.append(job)
            self._backend.kick()

    def _submit(
        self,
        fn: Callable[..., Any],
        source: Iterable[Any],
        star: int,
        mode: int,
        what: str,
        total: int | None = None,
    ) -> _Job:
        self._ensure_started()
        if total is None:
            try:
                total = len(source)  # type: ignore[arg-type]
            except TypeError:
                total = None
        window = None if mode == _MAP else max(64, self.processes * self.concurrency * 4)
        job = _Job(self, fn, source, star, mode, window, what, total)
        self._jobs.add(job)
        self._activate(job)
        return job

    def _forget(self, job: _Job) -> None:
        self._jobs.discard(job)

    # -- API -----------------------------------------------------------------------------------
    async def map(self, fn: Callable[..., Any], iterable: Iterable[Any]) -> list[Any]:
        """``[await fn(x) for x in iterable]`` run in the workers; results in input order."""
        job = self._submit(fn, iterable, STAR_ONE, _MAP, "map")
        try:
            return await job.result()
        finally:
            self._forget(job)

    async def starmap(self, fn: Callable[..., Any], iterable: Iterable[Iterable[Any]]) -> list[Any]:
        """Like ``map`` but each element is a tuple of positional arguments."""
        total = len(iterable) if isinstance(iterable, Sized) else None
        job = self._submit(fn, (tuple(a) for a in iterable), STAR_ARGS, _MAP, "starmap", total)
        try:
            return await job.result()
        finally:
            self._forget(job)

    async def apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` in a worker."""
        try:
            # Pickled here, so an unpicklable argument fails now even when every worker is busy.
            pre = _Prepickled(pickle.dumps((args, kwargs), PICKLE_PROTOCOL))
        except Exception as exc:
            raise pickle.PicklingError(
                f"apply({_fn_name(fn)}): an argument cannot be pickled to send it to a "
                f"worker: {exc}"
            ) from exc
        job = self._submit(fn, [pre], STAR_KW, _MAP, "apply")
        try:
            return (await job.result())[0]
        finally:
            self._forget(job)

    def imap(self, fn: Callable[..., Any], iterable: Iterable[Any]) -> AsyncIterator[Any]:
        """Results in input order, streamed as soon as each next one is ready."""
        return self._iter(fn, iterable, _IMAP, "imap")

    def imap_unordered(
        self, fn: Callable[..., Any], iterable: Iterable[Any]
    ) -> AsyncIterator[Any]:
        """Results in the order they finish."""
        return self._iter(fn, iterable, _UNORDERED, "imap_unordered")

    def _iter(
        self, fn: Callable[..., Any], iterable: Iterable[Any], mode: int, what: str
    ) -> AsyncIterator[Any]:
        def start() -> _Job:
            return self._submit(fn, iterable, STAR_ONE, mode, what)

        return _ResultIterator(start)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._started else "not started")
        workers = getattr(self._backend, "workers", None)
        pids = f" pids={[w.pid for w in workers]}" if workers else ""
        return (
            f"<tideloop.Pool {state} processes={self.processes} concurrency={self.concurrency} "
            f"backend={type(self._backend).__name__} calls={len(self._jobs)}{pids}>"
        )

    def __del__(self) -> None:
        if getattr(self, "_started", False) and not self._closed:
            try:
                self.terminate()
            except Exception:
                pass
