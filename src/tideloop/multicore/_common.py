"""Errors and helpers shared by the parent and the worker side of the multicore runtime.

Invariant: an exception crosses a process boundary as an ``ErrorBlob`` that always decodes to
*some* exception in the parent: the original type when it pickles both ways, else ``RemoteError``;
either way the worker's formatted traceback is attached as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import traceback
from typing import Any

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL

# (pickled exception or None, "module.QualName", str(exc), formatted traceback)
ErrorBlob = tuple[bytes | None, str, str, str]


def _new_loop() -> asyncio.AbstractEventLoop:
    """The one place the multicore runtime makes an event loop for a worker or a supervisor."""
    import tideloop

    return tideloop.new_event_loop()


class WorkerLost(Exception):
    """A worker process died (crash, ``os._exit``, signal, OOM) while it held this item.

    ``item`` is the item's position in the call's input (0 for ``apply``), ``pid`` and ``exitcode``
    describe the dead process (``exitcode`` is ``-signal`` for a signal, as in ``subprocess``).
    """

    def __init__(
        self, message: str, *, item: int | None = None, pid: int | None = None,
        exitcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.item = item
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self) -> Any:
        return (_rebuild_worker_lost, (self.args[0], self.item, self.pid, self.exitcode))


def _rebuild_worker_lost(message: str, item: int | None, pid: int | None,
                         exitcode: int | None) -> WorkerLost:
    return WorkerLost(message, item=item, pid=pid, exitcode=exitcode)


class RemoteTraceback(Exception):
    """A worker's formatted traceback, attached as ``__cause__`` of the re-raised exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(Exception):
    """Stands in for a worker exception whose type could not travel (not picklable both ways)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset / cpusets, unlike os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "exited"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def pack_error(exc: BaseException) -> ErrorBlob:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    t = type(exc)
    type_name = f"{t.__module__}.{t.__qualname__}"
    try:
        # The traceback and chained exceptions do not pickle; the text above keeps them.
        data: bytes | None = pickle.dumps(exc, PICKLE_PROTOCOL)
    except Exception:
        data = None
    try:
        text = str(exc)
    except Exception:
        text = "<str() failed>"
    return (data, type_name, text, tb)


def unpack_error(blob: ErrorBlob) -> BaseException:
    data, type_name, text, tb = blob
    exc: BaseException | None = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except Exception:
            # e.g. an exception whose __init__ takes other arguments than it passes to super().
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, text)
    exc.__cause__ = RemoteTraceback(tb)
    return exc
