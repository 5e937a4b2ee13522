"""``run_workers``: one coroutine ``main(worker)`` in N processes sharing listening sockets.

Invariant: the parent binds every socket before any worker starts and keeps them open for the
whole run, so a restarted worker serves the same sockets and no pending connection is dropped; a
slot is finished only after its process is reaped, and ``run_workers`` returns only when every
slot is finished (SIGINT/SIGTERM: STOP, then SIGKILL after ``graceful_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ._common import PICKLE_PROTOCOL, _new_loop, describe_exit, unpack_error, usable_cpus
from ._spawn import ProcessHandle, preparation_data
from ._wire import DONE, INIT_ERROR, STOP, Channel

logger = logging.getLogger("tideloop.multicore")

# A worker that ran at least this long before crashing restarts without waiting.
_STABLE_SECONDS = 10.0


@dataclass
class Worker:
    """What ``main`` receives: its slot ``index`` (0..count-1), the listening ``sockets`` the
    parent bound (in ``listen=`` order), and how many times this slot was ``restarts``-ed."""

    index: int
    count: int
    restarts: int = 0
    sockets: list[socket.socket] = field(default_factory=list)


ListenSpec = tuple[str, int] | socket.socket


def _bind(host: str, port: int, reuse_port: bool, backlog: int) -> socket.socket:
    family, type_, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_sockets(
    listen: Iterable[ListenSpec], count: int, reuse_port: bool, backlog: int
) -> list[list[socket.socket]]:
    """Sockets per worker slot: shared objects, or with ``reuse_port`` one socket per slot per
    address (all on the same port, the kernel spreads connections between them)."""
    specs = list(listen)
    per_slot: list[list[socket.socket]] = [[] for _ in range(count)]
    made: list[socket.socket] = []
    try:
        for spec in specs:
            if isinstance(spec, socket.socket):
                for slot in per_slot:
                    slot.append(spec)
                continue
            host, port = spec
            if not reuse_port:
                sock = _bind(host, port, False, backlog)
                made.append(sock)
                for slot in per_slot:
                    slot.append(sock)
                continue
            first = _bind(host, port, True, backlog)
            made.append(first)
            real_port = first.getsockname()[1]
            per_slot[0].append(first)
            for slot in per_slot[1:]:
                sock = _bind(host, real_port, True, backlog)
                made.append(sock)
                slot.append(sock)
    except BaseException:
        for s in made:
            s.close()
        raise
    return per_slot


class _Slot:
    def __init__(self, index: int, sockets: list[socket.socket]) -> None:
        self.index = index
        self.sockets = sockets
        self.restarts = 0
        self.handle: ProcessHandle | None = None
        self.chan: Channel | None = None
        self.outcome: tuple[bool, Any] | None = None
        self.started_at = 0.0
        self.failures = 0
        self.finished = False
        self.restart_timer: asyncio.TimerHandle | None = None
        self.returncode: int | None = None


def _on_eof(handle: ProcessHandle, exc: BaseException | None) -> None:
    handle.check_soon()


class _Supervisor:
    def __init__(
        self,
        main: Callable[[Worker], Awaitable[Any]],
        per_slot: list[list[socket.socket]],
        restart: bool,
        graceful_timeout: float,
        max_backoff: float,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop_factory = loop_factory
        self.count = len(per_slot)
        self.main = main
        try:
            pickle.dumps(main, PICKLE_PROTOCOL)
        except Exception as exc:
            raise pickle.PicklingError(
                f"run_workers: main cannot be pickled to send it to the workers (define it at "
                f"module level): {exc}"
            ) from exc
        self.prep = preparation_data()
        self.slots = [_Slot(i, socks) for i, socks in enumerate(per_slot)]
        self.restart = restart
        self.graceful_timeout = graceful_timeout
        self.max_backoff = max_backoff
        self.stopping = False
        self.fatal: BaseException | None = None
        self.kill_timer: asyncio.TimerHandle | None = None
        self.all_done: asyncio.Future[None] = self.loop.create_future()

    def start(self, slot: _Slot) -> None:
        slot.restart_timer = None
        slot.outcome = None
        fds = [s.fileno() for s in slot.sockets]
        worker = Worker(slot.index, self.count, slot.restarts)
        # The worker unpickles this after re-importing __main__, where `main` may live.
        blob = pickle.dumps(
            {"main": self.main, "worker": worker, "socket_fds": fds,
             "loop_factory": self.loop_factory},
            PICKLE_PROTOCOL,
        )
        handle = ProcessHandle(pass_fds=sorted(set(fds)))
        slot.handle = handle
        slot.started_at = self.loop.time()
        slot.chan = Channel(
            self.loop,
            handle.from_child,
            handle.to_child,
            partial(self.on_messages, slot),
            partial(_on_eof, handle),
        )
        slot.chan.send([("boot", self.prep, "serve", blob)])
        handle.watch(self.loop, partial(self.on_exit, slot))

    def on_messages(self, slot: _Slot, messages: list[tuple[Any, ...]]) -> None:
        for m in messages:
            if m[0] == DONE:
                slot.outcome = (m[1], m[2])
            elif m[0] == INIT_ERROR:
                # `main` could not even be loaded in a fresh interpreter: restarting cannot help.
                self.fatal = self.fatal or unpack_error(m[1])

    def on_exit(self, slot: _Slot, returncode: int) -> None:
        assert slot.chan is not None
        slot.chan.drain()
        slot.chan.close()
        slot.chan = None
        outcome = slot.outcome
        if self.fatal is not None:
            slot.finished = True
            if not self.stopping:
                logger.error("tideloop worker %d could not start: %r", slot.index, self.fatal)
                self.stop()
        elif self.stopping or (outcome is not None and outcome[0]):
            slot.finished = True
        elif outcome is None and returncode == 0:
            # sys.exit(0) / os._exit(0) in main: the worker chose to end, not a crash.
            slot.finished = True
        else:
            if outcome is not None:
                why = f"main raised {unpack_error(outcome[1])!r}"
            else:
                why = describe_exit(returncode)
            if self.restart:
                lived = self.loop.time() - slot.started_at
                slot.failures = 0 if lived >= _STABLE_SECONDS else slot.failures + 1
                delay = 0.0 if slot.failures == 0 else min(
                    0.1 * 2 ** (slot.failures - 1), self.max_backoff
                )
                logger.warning(
                    "tideloop worker %d (pid %d) %s; restarting in %.1f s",
                    slot.index, slot.handle.pid if slot.handle else 0, why, delay,
                )
                slot.restarts += 1
                slot.restart_timer = self.loop.call_later(delay, self.start, slot)
                return
            logger.error("tideloop worker %d %s", slot.index, why)
            slot.finished = True
            if outcome is None:
                slot.outcome = (False, None)
                slot.returncode = returncode
        self.check_done()

    def check_done(self) -> None:
        if all(s.finished for s in self.slots) and not self.all_done.done():
            if self.kill_timer is not None:
                self.kill_timer.cancel()
            self.all_done.set_result(None)

    def stop(self) -> None:
        if self.stopping:
            # A second Ctrl-C / SIGTERM: do not wait for the graceful timeout.
            self.kill_all()
            return
        self.stopping = True
        for slot in self.slots:
            if slot.restart_timer is not None:
                slot.restart_timer.cancel()
                slot.restart_timer = None
                slot.finished = True
            if slot.chan is not None:
                slot.chan.send([(STOP,)])
        self.kill_timer = self.loop.call_later(self.graceful_timeout, self.kill_all)
        self.check_done()

    def kill_all(self) -> None:
        for slot in self.slots:
            if slot.handle is not None and slot.handle.returncode is None:
                logger.warning("tideloop worker %d: stop not finished; killing it", slot.index)
                slot.handle.kill()

    async def run(self) -> list[Any]:
        for slot in self.slots:
            self.start(slot)
        try:
            await asyncio.shield(self.all_done)
        except asyncio.CancelledError:
            # Our caller is going away: stop the workers, but do not return before they are reaped.
            self.stop()
            await self.all_done
            raise
        results: list[Any] = []
        errors: list[BaseException] = []
        for slot in self.slots:
            outcome = slot.outcome
            if outcome is None or self.stopping and not outcome[0]:
                results.append(None)
            elif outcome[0]:
                results.append(pickle.loads(outcome[1]))
            else:
                results.append(None)
                if outcome[1] is not None:
                    errors.append(unpack_error(outcome[1]))
                else:
                    errors.append(
                        RuntimeError(f"worker {slot.index} {describe_exit(slot.returncode)}")
                    )
        if self.fatal is not None:
            raise self.fatal
        if errors and not self.stopping:
            raise errors[0]
        return results


async def supervise_workers(
    main: Callable[[Worker], Awaitable[Any]],
    *,
    workers: int | None = None,
    listen: Sequence[ListenSpec] = (),
    reuse_port: bool = False,
    backlog: int = 1024,
    restart: bool = True,
    graceful_timeout: float = 10.0,
    max_backoff: float = 5.0,
    handle_signals: bool = True,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> list[Any]:
    """The async core of ``run_workers``, for callers that already run a loop."""
    count = workers if workers is not None else usable_cpus()
    if count < 1:
        raise ValueError("workers must be at least 1")
    per_slot = bind_sockets(listen, count, reuse_port, backlog)
    owned = {s for slot in per_slot for s in slot} - {
        s for s in listen if isinstance(s, socket.socket)
    }
    try:
        sup = _Supervisor(main, per_slot, restart, graceful_timeout, max_backoff, loop_factory)
    except BaseException:
        for s in owned:
            s.close()
        raise
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, sup.stop)
                signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    try:
        return await sup.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        for s in owned:
            s.close()


def run_workers(
    main: Callable[[Worker], Awaitable[Any]],
    *,
    workers: int | None = None,
    listen: Sequence[ListenSpec] = (),
    reuse_port: bool = False,
    backlog: int = 1024,
    restart: bool = True,
    graceful_timeout: float = 10.0,
    max_backoff: float = 5.0,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> list[Any]:
    """Run ``await main(worker)`` in ``workers`` processes (default: CPU count), each on its own
    event loop, and return their results in slot order once every one has returned.

    ``listen=[(host, port), ...]`` is bound here, in the parent, and every worker gets the sockets
    as ``worker.sockets`` (``reuse_port=True``: one SO_REUSEPORT socket per worker instead of one
    shared socket). A worker that crashes or raises is restarted with exponential back-off (up to
    ``max_backoff`` seconds) unless ``restart=False``. SIGINT/SIGTERM cancel every worker's main
    task and wait up to ``graceful_timeout`` seconds before killing; then this returns (results of
    stopped workers are None). ``loop_factory`` (picklable, e.g. ``asyncio.new_event_loop``)
    replaces tideloop's loop in the workers; the supervisor itself always runs on tideloop.
    """
    loop = _new_loop()
    try:
        return loop.run_until_complete(
            supervise_workers(
                main,
                workers=workers,
                listen=listen,
                reuse_port=reuse_port,
                backlog=backlog,
                restart=restart,
                graceful_timeout=graceful_timeout,
                max_backoff=max_backoff,
                loop_factory=loop_factory,
            )
        )
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
