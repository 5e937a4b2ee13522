"""The worker process: bootstrap from the parent's pipe, then serve Pool items or run a main.

Invariant: every CALL the parent sends gets exactly one reply (OK, ERR or CANCELLED) unless the
process dies; a worker never outlives its parent's pipe (EOF on it cancels everything and exits),
and Ctrl-C on the terminal is the parent's business (SIGINT is ignored here).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from ._common import PICKLE_PROTOCOL, _new_loop, pack_error
from ._wire import (
    CALL,
    CANCEL,
    CANCELLED,
    DONE,
    ERR,
    INIT_ERROR,
    OK,
    READY,
    STAR_ARGS,
    STAR_ONE,
    STOP,
    Channel,
    read_frame_blocking,
    write_frame_blocking,
)

_FN_CACHE_MAX = 256
_EAGER = sys.version_info >= (3, 12)


def main(rfd: int, wfd: int) -> None:
    """Entry point run by ``python -c`` in a fresh interpreter (see ``_spawn._BOOT_CODE``)."""
    for fd in (rfd, wfd):
        os.set_inheritable(fd, False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    boot = read_frame_blocking(rfd)
    if not boot:
        return  # the parent went away before saying anything
    _, prep, mode, blob = boot[0]
    try:
        import multiprocessing.spawn

        from . import _spawn

        # Re-importing the parent's __main__ must not start pools of its own (a fork bomb).
        _spawn.IMPORTING_MAIN = True
        try:
            multiprocessing.spawn.prepare(prep)
        finally:
            _spawn.IMPORTING_MAIN = False
        config = pickle.loads(blob)
    except BaseException as exc:
        write_frame_blocking(wfd, [(INIT_ERROR, pack_error(exc))])
        sys.exit(1)
    if mode == "pool":
        _PoolWorker(rfd, wfd, **config).run()
    elif mode == "serve":
        _serve(rfd, wfd, **config)
    else:  # pragma: no cover - a version mismatch between parent and worker
        raise SystemExit(f"tideloop worker: unknown mode {mode!r}")


class _PoolWorker:
    def __init__(
        self,
        rfd: int,
        wfd: int,
        *,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        concurrency: int,
        max_tasks: int | None,
    ) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.initializer = initializer
        self.initargs = initargs
        self.concurrency = concurrency
        self.max_tasks = max_tasks
        self.replies = 0
        self.running = 0
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.cancel_requested: set[int] = set()
        self.pending: deque[tuple[Any, ...]] = deque()
        self.fn_cache: dict[bytes, tuple[Callable[..., Any], bool]] = {}
        self.out: list[tuple[Any, ...]] = []
        self.flush_scheduled = False
        self.pump_scheduled = False
        self.stopping = False

    def run(self) -> None:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        try:
            if self.initializer is not None:
                r = self.initializer(*self.initargs)
                if inspect.isawaitable(r):
                    loop.run_until_complete(r)
        except BaseException as exc:
            write_frame_blocking(self.wfd, [(INIT_ERROR, pack_error(exc))])
            loop.close()
            sys.exit(1)
        self.chan = Channel(loop, self.rfd, self.wfd, self.on_messages, self.on_eof)
        self.chan.send([(READY, os.getpid())])
        try:
            loop.run_until_complete(self.done)
            self.flush()
            self.chan.flush_blocking()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self.chan.close()
            loop.close()

    # -- input ---------------------------------------------------------------------------------
    def on_messages(self, messages: list[tuple[Any, ...]]) -> None:
        for m in messages:
            kind = m[0]
            if kind == CALL:
                self.pending.append(m)
            elif kind == CANCEL:
                self.cancel(m[1])
            elif kind == STOP:
                self.stop()
        self.pump()

    def pump(self) -> None:
        """Start queued items while there is room.

        Plain functions run inline; once they have held the loop for 2 ms we yield to it, so
        their results leave (streaming) and CANCELs get read between them.
        """
        self.pump_scheduled = False
        pending = self.pending
        t0 = time.monotonic()
        while pending and self.running < self.concurrency and not self.stopping:
            self.start(pending.popleft())
            if pending and time.monotonic() - t0 > 0.002:
                if not self.pump_scheduled:
                    self.pump_scheduled = True
                    self.loop.call_soon(self.pump)
                return

    def on_eof(self, exc: BaseException | None) -> None:
        # The parent is gone (or closed our pipe): nobody wants the results any more.
        self.stopping = True
        self.pending.clear()
        for iid, task in self.tasks.items():
            self.cancel_requested.add(iid)
            task.cancel()
        # A task that swallows its cancellation must not keep an orphan alive for long.
        self.loop.call_later(5.0, self.force_done)
        self.maybe_done()

    def force_done(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def stop(self) -> None:
        self.stopping = True
        while self.pending:
            self.reply((CANCELLED, self.pending.popleft()[1]))
        for iid, task in self.tasks.items():
            self.cancel_requested.add(iid)
            task.cancel()
        self.maybe_done()

    def cancel(self, iid: int) -> None:
        task = self.tasks.get(iid)
        if task is not None:
            self.cancel_requested.add(iid)
            task.cancel()
            return
        for m in self.pending:
            if m[1] == iid:
                self.pending.remove(m)
                self.reply((CANCELLED, iid))
                return
        # Already answered: the reply crossed the CANCEL on the wire.

    # -- running items -------------------------------------------------------------------------
    def start(self, m: tuple[Any, ...]) -> None:
        _, iid, fn_bytes, args_bytes, star = m
        try:
            entry = self.fn_cache.get(fn_bytes)
            if entry is None:
                fn = pickle.loads(fn_bytes)
                if len(self.fn_cache) >= _FN_CACHE_MAX:
                    self.fn_cache.clear()
                entry = self.fn_cache[fn_bytes] = (fn, inspect.iscoroutinefunction(fn))
            fn, is_async = entry
            args = pickle.loads(args_bytes)
        except Exception as exc:
            err = pickle.UnpicklingError(f"the worker could not unpickle the call: {exc!r}")
            err.__cause__ = exc
            self.reply((ERR, iid, pack_error(err)))
            return
        if not is_async and self.out:
            # A plain function runs inline and may run long: what is done must leave first.
            self.flush()
        try:
            if star == STAR_ONE:
                r = fn(args)
            elif star == STAR_ARGS:
                r = fn(*args)
            else:
                r = fn(*args[0], **args[1])
        except Exception as exc:
            self.reply((ERR, iid, pack_error(exc)))
            return
        if asyncio.iscoroutine(r):
            if _EAGER:
                # Run the first step now: an item that never suspends costs no loop round trip.
                task = asyncio.Task(r, loop=self.loop, eager_start=True)  # type: ignore[call-arg]
                if task.done():
                    self.report(iid, task)
                    return
            else:
                task = self.loop.create_task(r)
        elif inspect.isawaitable(r):
            task = self.loop.create_task(_await(r))
        else:
            self.reply_result(iid, r)
            return
        self.tasks[iid] = task
        self.running += 1
        task.add_done_callback(partial(self.task_done, iid))

    def task_done(self, iid: int, task: asyncio.Task[Any]) -> None:
        del self.tasks[iid]
        self.running -= 1
        self.report(iid, task)
        if self.pending and not self.pump_scheduled:
            self.pump()
        self.maybe_done()

    def report(self, iid: int, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            if iid in self.cancel_requested:
                self.cancel_requested.discard(iid)
                self.reply((CANCELLED, iid))
            else:
                err = RuntimeError("the item was cancelled inside the worker")
                self.reply((ERR, iid, pack_error(err)))
        else:
            self.cancel_requested.discard(iid)
            exc = task.exception()
            if exc is not None:
                self.reply((ERR, iid, pack_error(exc)))
            else:
                self.reply_result(iid, task.result())

    def reply_result(self, iid: int, value: Any) -> None:
        try:
            data = pickle.dumps(value, PICKLE_PROTOCOL)
        except Exception as exc:
            err = pickle.PicklingError(
                f"the result ({type(value).__name__}) cannot be pickled to send it back: {exc}"
            )
            err.__cause__ = exc
            self.reply((ERR, iid, pack_error(err)))
            return
        self.reply((OK, iid, data))

    # -- output --------------------------------------------------------------------------------
    def reply(self, msg: tuple[Any, ...]) -> None:
        self.replies += 1
        self.out.append(msg)
        if not self.flush_scheduled:
            # Everything answered in this loop iteration leaves in one frame, one write.
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        if self.max_tasks is not None and self.replies >= self.max_tasks:
            self.stopping = True
            self.maybe_done()

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out:
            out, self.out = self.out, []
            self.chan.send(out)

    def maybe_done(self) -> None:
        if self.stopping and not self.tasks and not self.done.done():
            self.done.set_result(None)


async def _await(aw: Any) -> Any:
    return await aw


def _serve(
    rfd: int,
    wfd: int,
    *,
    main: Callable[..., Any],
    worker: Any,
    socket_fds: list[int],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    import socket

    worker.sockets = []
    for fd in socket_fds:
        os.set_inheritable(fd, False)
        worker.sockets.append(socket.socket(fileno=fd))
    loop = loop_factory() if loop_factory is not None else _new_loop()
    asyncio.set_event_loop(loop)
    stop_requested = False

    async def runner() -> None:
        nonlocal stop_requested
        main_task = asyncio.ensure_future(main(worker))

        def on_messages(messages: list[tuple[Any, ...]]) -> None:
            nonlocal stop_requested
            for m in messages:
                if m[0] == STOP:
                    stop_requested = True
                    main_task.cancel()

        def on_eof(exc: BaseException | None) -> None:
            nonlocal stop_requested
            stop_requested = True
            main_task.cancel()

        chan = Channel(loop, rfd, wfd, on_messages, on_eof)
        # `kill -TERM -<pgid>` reaches the workers as well as the parent: stop as gracefully.
        loop.add_signal_handler(signal.SIGTERM, on_eof, None)
        chan.send([(READY, os.getpid())])
        reply: tuple[Any, ...]
        try:
            result = await main_task
        except asyncio.CancelledError:
            if not stop_requested:
                raise
            reply = (DONE, True, pickle.dumps(None, PICKLE_PROTOCOL))
        except Exception as exc:
            reply = (DONE, False, pack_error(exc))
        else:
            try:
                reply = (DONE, True, pickle.dumps(result, PICKLE_PROTOCOL))
            except Exception as exc:
                reply = (DONE, False, pack_error(exc))
        chan.send([reply])
        chan.flush_blocking()
        chan.close()

    try:
        loop.run_until_complete(runner())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        for s in worker.sockets:
            s.close()
        loop.close()
