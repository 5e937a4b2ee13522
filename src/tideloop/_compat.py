"""Every private piece of asyncio that tideloop touches, in one place.

Invariant: nothing else in tideloop imports a private asyncio name, and the one place that reads
private attributes of asyncio objects for speed (the Streams fast path in _stream_transport.py)
is switched on from here; each item says which Python versions it was checked against, so a new
CPython release means reading this file only.
"""

from __future__ import annotations

import logging
import os
import sys
from asyncio import base_events, coroutines, events, format_helpers
from asyncio import constants as _constants
from collections.abc import Callable
from typing import Any

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)

# These are looked up on their modules at each call, not bound at import: asyncio's own tests
# (and some applications) patch them, e.g. to swap in the pure-Python running-loop functions.
# Checked on 3.11.7, 3.12.1, 3.13.0.


def get_running_loop_or_none() -> Any:
    return events._get_running_loop()


def set_running_loop(loop: Any) -> None:
    events._set_running_loop(loop)


# The Streams fast path (_stream_transport._feed_stream_reader) does what
# StreamReaderProtocol.data_received -> StreamReader.feed_data -> _wakeup_waiter do, reading and
# writing the reader's _buffer, _waiter, _eof, _transport, _paused, _limit and the protocol's
# _stream_reader_wr. Those methods are identical in 3.11.7, 3.12.1 and 3.13.0; on a version not
# checked yet the fast path stays off and data goes through data_received as usual.
STREAM_FAST_PATH = (3, 11) <= sys.version_info < (3, 14)


def is_debug_mode() -> bool:
    """PYTHONASYNCIODEBUG or -X dev, as asyncio reads it for a new loop."""
    return bool(coroutines._is_debug_mode())  # type: ignore[attr-defined]


def logger() -> logging.Logger:
    """The 'asyncio' logger, through base_events so that patching it there is honoured."""
    return base_events.logger  # type: ignore[attr-defined,no-any-return]


# Checked on 3.11-3.13: FrameSummary list used for `_source_traceback` of handles.
extract_stack: Callable[..., Any] = format_helpers.extract_stack

# asyncio's own stack depth for coroutine origin tracking in debug mode (constants, 3.11-3.13).
DEBUG_STACK_DEPTH: int = _constants.DEBUG_STACK_DEPTH

# asyncio.Runner waits this long for the default executor (3.12+ passes it explicitly).
THREAD_JOIN_TIMEOUT: float = getattr(_constants, "THREAD_JOIN_TIMEOUT", 300)

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def format_callback_source(callback: Any, args: Any, debug: bool) -> str:
    """`<func(args) at file:line>` exactly as asyncio prints it in handle reprs and errors.

    3.13 added the keyword-only `debug` (long argument reprs are cut unless debug is on);
    3.11 and 3.12 take two positional arguments.
    """
    if PY313:
        return format_helpers._format_callback_source(  # type: ignore[call-arg]
            callback, args, debug=debug)
    return format_helpers._format_callback_source(callback, args)


def user_stack() -> Any:
    """The calling stack as asyncio records it in debug mode, minus tideloop's own frames.

    Compiled code has no Python frames and interpreted code does, so skipping by file keeps the
    last entry at the user's call site in both modes.
    """
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back  # type: ignore[assignment]
    return extract_stack(f)


def trim_tideloop_frames(tb: list[Any] | None) -> None:
    """Drop trailing frames inside tideloop from a `_source_traceback` asyncio recorded itself."""
    while tb and str(tb[-1][0]).startswith(_PKG_DIR):
        del tb[-1]


def set_task_name(task: Any, name: str | None) -> None:
    """Name a task made by a custom task factory, tolerating factories' futures without set_name.

    3.11/3.12 do this in tasks._set_task_name; 3.13.0 calls set_name(name) even for None, which
    names the task 'None' (a CPython bug fixed later); we keep the factory's own name instead.
    """
    if name is None:
        return
    try:
        set_name = task.set_name
    except AttributeError:
        return
    set_name(name)
