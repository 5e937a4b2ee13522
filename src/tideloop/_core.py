"""Loop core: handles, the timer heap, the ready queue, fd registrations and one loop iteration.

Invariants: callbacks run only inside ``_run_once``; ready callbacks run in the order they were
scheduled; timers become ready in order of (when, scheduling order), so timers due at the same time
keep FIFO order; a cancelled handle never runs. While the loop runs, the handles it holds are
hidden from the cyclic GC (compiled core; see ``_gc_hide``) and every handle the loop lets go of
is visible to it again. This file is compiled by Cython in pure Python mode
(types in ``_core.pxd``) and runs unchanged when interpreted.
"""

from __future__ import annotations

import inspect
import os
import threading
import time as _time
from asyncio import Future, Task, coroutines
from contextvars import copy_context
from typing import Any

from . import _compat
from ._reactor import MAX_TIMEOUT, READ, WRITE
from ._timerheap import TimerHeap

try:
    import cython
except ImportError:  # pragma: no cover - interpreted without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

if cython.compiled:
    # C API shortcuts for the compiled core; the interpreted core uses the Python equivalents.
    from cython.cimports.cpython.contextvars import (  # type: ignore[import-not-found]
        PyContext_CopyCurrent,
    )
    from cython.cimports.posix.unistd import write as c_write  # type: ignore[import-not-found]
    from cython.cimports.tideloop._capi import (  # type: ignore[import-not-found]
        c_monotonic,
        list_forget,
        list_take,
        prefetch_item,
        raise_pending,
        resolves_to,
        run_in_context,
    )
    from cython.cimports.tideloop._ctx_sys import (  # type: ignore[import-not-found]
        ctx_current_is,
        ctx_init,
        ctx_restore,
        ctx_sharing,
        ctx_vars,
    )
    from cython.cimports.tideloop._gc_sys import (  # type: ignore[import-not-found]
        Py_REFCNT,
        PyObject_GC_Track,
        PyObject_GC_UnTrack,
        gc_count_init,
        gc_recount,
        gc_uncount,
    )
    from cython.cimports.tideloop._sched_sys import (  # type: ignore[import-not-found]
        sched_install,
    )

    gc_count_init()
    ctx_init()

_monotonic = _time.monotonic
# The classes create_task/create_future instantiate on every call: C globals when compiled
# (_core.pxd), where reading the imported names would be a module-dict lookup each time.
_Task: Any = Task
_Future: Any = Future

# asyncio rebuilds the heap when more than half of at least 100 timers are cancelled
# (base_events._MIN_SCHEDULED_TIMER_HANDLES / _MIN_CANCELLED_TIMER_HANDLES_FRACTION).
_MIN_SCHEDULED_TIMER_HANDLES = 100

# fds below this are also found through LoopCore._fd_table, a list indexed by fd: dispatching a
# ready fd then reads one list slot instead of hashing an int into the _fds dict (~150
# instructions per event, compiled). Larger fds (rare: a process with 65k files open) take the
# dict alone, so the list never grows past 512 KiB.
_FD_TABLE_MAX = 1 << 16

COMPILED = not __file__.endswith((".py", ".pyc"))
# Whether scheduled handles share context copies ("Shared context copies").
CONTEXT_SHARING = bool(ctx_sharing()) if cython.compiled else False


# Freelists recycle the memory of handles the loop just ran: the next call_soon gets a block that
# is still in cache. (Cython reads class decorators from here, not from the .pxd, in pure mode.)
@cython.freelist(256)
@cython.cclass
class Handle:
    """A scheduled callback: the object ``call_soon`` and ``add_reader`` return."""

    # Interpreted, slots keep a handle small and dict-free (one GC object, not two), as
    # asyncio's are; compiled, the fields are the C struct from _core.pxd.
    __slots__ = ("_callback", "_args", "_cancelled", "_loop", "_debug_info", "_context",
                 "_own_context", "__weakref__")

    # Declared for mypy; the compiled core takes the field types from _core.pxd.
    _callback: Any
    _args: Any
    _cancelled: bool
    _loop: LoopCore
    # asyncio's _source_traceback and _repr, both set only in debug mode, share one field (the
    # properties below): None, or [source traceback, saved repr]. Two fields fewer keep a
    # handle in a smaller allocator size class, and the loop may hold 100k of them at once.
    _debug_info: list[Any] | None
    _context: Any
    # 0 (passed in, or the interpreted core), _OWN (copied for this handle alone: hidden from
    # the GC with it) or _SHARED (a copy other handles use too, see "Shared context copies").
    _own_context: int
    # Compiled only, a C field (_core.pxd), not a slot: interpreted, nothing is hidden. mypy
    # checks the assignments against __slots__, hence the ignores where it is set.
    _gc_hidden: int  # 0, _HIDDEN or _UNCOUNTED (see _gc_hide)

    def __init__(self, callback: Any, args: Any, loop: Any, context: Any = None) -> None:
        _init_handle(self, callback, args, loop, context)

    def __repr__(self) -> str:
        if self._repr is not None:
            return str(self._repr)
        return "<{}>".format(" ".join(self._repr_info()))

    def _repr_info(self) -> list[str]:
        info = [type(self).__name__]
        if self._cancelled:
            info.append("cancelled")
        if self._callback is not None:
            info.append(_compat.format_callback_source(self._callback, self._args,
                                                       bool(self._loop._debug)))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    @property
    def _source_traceback(self) -> Any:
        info = self._debug_info
        return None if info is None else info[0]

    @_source_traceback.setter
    def _source_traceback(self, value: Any) -> None:
        if self._debug_info is None:
            self._debug_info = [value, None]
        else:
            self._debug_info[0] = value

    @property
    def _repr(self) -> str | None:
        info = self._debug_info
        return None if info is None else info[1]  # type: ignore[no-any-return]

    @_repr.setter
    def _repr(self, value: str | None) -> None:
        if self._debug_info is None:
            self._debug_info = [None, value]
        else:
            self._debug_info[1] = value

    def get_context(self) -> Any:
        if cython.compiled and self._own_context == _SHARED:
            # A copy of its own from now on, as asyncio gives every handle: what the caller
            # does with it (ContextVar.set() through Context.run) stays with this handle.
            self._context = self._context.copy()
            self._own_context = 0
        return self._context

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            if self._loop._debug:
                # Keep a description: the slow-callback warning may still need it.
                self._repr = repr(self)
            self._callback = None
            self._args = None

    def cancelled(self) -> bool:
        return self._cancelled

    def _run(self) -> None:
        if cython.compiled:
            # Context.run without building the (callback, *args) tuple it needs, and without a
            # try block on the way (see run_in_context): errors take _run_failed.
            if self._own_context == _SHARED:
                # Other handles use this context too: what the callback sets is undone once it
                # has left it (see "Shared context copies"), after the exception handler, which
                # runs in the context as the callback left it (asyncio 3.12+).
                ctx = self._context
                saved = ctx_vars(ctx)
                if run_in_context(ctx, self._callback, self._args) < 0:
                    self._run_failed_shared(ctx, saved)
                else:
                    ctx_restore(ctx, saved)
            elif run_in_context(self._context, self._callback, self._args) < 0:
                self._run_failed()
            return
        try:
            self._context.run(self._callback, *self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop._report_callback_error(self, exc)
        # A traceback that passed through a callback keeps this frame alive (as the f_back of
        # the coroutine's frame); it must not keep the handle, and so the task, alive.
        self = None  # type: ignore[assignment]

    def _run_failed_shared(self, ctx: Any, saved: Any) -> None:
        """Compiled core: _run_failed for a shared context, restored whatever happens."""
        try:
            self._run_failed()
        finally:
            if cython.compiled:
                ctx_restore(ctx, saved)

    def _run_failed(self) -> None:
        """Compiled core: what _run's except clauses do, for the exception left pending."""
        try:
            raise_pending()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop._report_callback_error(self, exc)


@cython.freelist(256)
@cython.cclass
class TimerHandle(Handle):
    """A callback scheduled for a loop time: what ``call_later`` and ``call_at`` return."""

    # No sequence number here: the heap keeps (when, seq) beside each timer, and a smaller
    # timer is a smaller allocation (see Handle._debug_info).
    __slots__ = ("_when", "_scheduled")

    _when: float
    _scheduled: bool

    def __init__(self, when: float, callback: Any, args: Any, loop: Any,
                 context: Any = None) -> None:
        _init_handle(self, callback, args, loop, context)
        self._when = when
        self._scheduled = False

    def _repr_info(self) -> list[str]:
        info = Handle._repr_info(self)
        info.insert(2 if self._cancelled else 1, f"when={self._when}")
        return info

    def __hash__(self) -> int:
        return hash(self._when)

    def __lt__(self, other: Any) -> bool:
        if isinstance(other, TimerHandle):
            return self._when < other._when
        return NotImplemented

    def __le__(self, other: Any) -> bool:
        if isinstance(other, TimerHandle):
            return self._when < other._when or self.__eq__(other)
        return NotImplemented

    def __gt__(self, other: Any) -> bool:
        if isinstance(other, TimerHandle):
            return self._when > other._when
        return NotImplemented

    def __ge__(self, other: Any) -> bool:
        if isinstance(other, TimerHandle):
            return self._when > other._when or self.__eq__(other)
        return NotImplemented

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, TimerHandle):
            return (self._when == other._when and self._callback == other._callback
                    and self._args == other._args and self._cancelled == other._cancelled)
        return NotImplemented

    def cancel(self) -> None:
        if not self._cancelled:
            if self._scheduled:
                self._loop._timer_cancelled_count += 1
        Handle.cancel(self)

    def when(self) -> float:
        return self._when

    def __dealloc__(self) -> None:
        # Compiled: a context hidden from the GC with this timer must be tracked before the
        # timer's reference to it goes (see _gc_hide); the loop normally did this already.
        if cython.compiled and self._gc_hidden:
            _gc_unhide(self)


def _init_handle(h: Handle, callback: Any, args: Any, loop: LoopCore, context: Any) -> None:
    h._own_context = 0
    if cython.compiled:
        h._gc_hidden = 0  # type: ignore[misc]  # compiled-only field
    if context is None:
        if cython.compiled:
            context = PyContext_CopyCurrent()
        else:
            context = copy_context()
    h._context = context
    h._loop = loop
    h._callback = callback
    h._args = args
    h._cancelled = False
    if loop._debug:
        h._debug_info = [_compat.user_stack(), None]
    else:
        h._debug_info = None


def _new_handle(callback: Any, args: Any, loop: LoopCore, context: Any) -> Handle:
    # Skips Handle.__init__'s argument parsing: this is the hottest allocation in the loop.
    # Scheduled once: without context=, a shared copy ("Shared context copies"; handles run
    # more than once, fd and signal handlers, take _init_handle's copy of their own).
    h = Handle.__new__(Handle)
    if cython.compiled and context is None and ctx_sharing():
        _init_handle(h, callback, args, loop, _shared_context(loop))
        h._own_context = _SHARED
        return h
    _init_handle(h, callback, args, loop, context)
    return h


def _shared_context(loop: LoopCore) -> Any:
    """A copy of the calling thread's current context, shared with earlier handles if it can be.

    Compiled only (see "Shared context copies" below).
    """
    if cython.compiled:
        shared = loop._ctx_shared
        if shared is not None and ctx_current_is(loop._ctx_shared_vars):
            return shared
        copy = PyContext_CopyCurrent()
        loop._ctx_set_shared(copy, ctx_vars(copy))
        return copy
    return None


def _new_timer(when: float, callback: Any, args: Any, loop: LoopCore, context: Any) -> TimerHandle:
    h = TimerHandle.__new__(TimerHandle)
    if cython.compiled and context is None and ctx_sharing():  # as in _new_handle
        _init_handle(h, callback, args, loop, _shared_context(loop))
        h._own_context = _SHARED
    else:
        _init_handle(h, callback, args, loop, context)
        if context is None:
            h._own_context = _OWN  # copied by _init_handle, for this timer alone
    h._when = when
    h._scheduled = False
    return h


if not cython.compiled:
    # Interpreted, every Python call is a frame: make Handle(...) run _init_handle as its
    # __init__ and let the loop call the class itself, one frame per handle instead of three.
    # The default is set here, not in the def, whose signature the compiled core declares.
    _init_handle.__defaults__ = (None,)
    Handle.__init__ = _init_handle  # type: ignore[assignment]
    _new_handle = Handle  # type: ignore[assignment]  # noqa: F811


def _recycle(loop: LoopCore, ready: list[Any]) -> None:
    # A batch whose slots are all taken becomes the next spare ready list: empty, kept
    # allocated, and visible to the GC again.
    if cython.compiled:
        list_forget(ready)
        PyObject_GC_Track(ready)
        loop._spare = ready


# Cyclic GC and handles. A loop holds many one-shot handles at once (a task step or a future
# callback per pending task, a timer per call_later), and walking them on every collection was
# a large share of gather() and timer runs. While the loop runs it is alive, and so is every
# handle it holds: a cycle through such a handle cannot be garbage yet. So the compiled core
# untracks one-shot handles created while it runs, and tracks them again as it lets go of them
# (after running, when a cancelled timer leaves the heap, when the loop stops or closes), if
# anyone else still holds them: from then on, cycles through them are collected as usual.
# fd and signal handles stay tracked throughout. Interpreted, these are no-ops.
#
# A timer's context copied for it alone (call_later/call_at without context=, where no copy is
# shared: see "Shared context copies") goes with it:
# hidden and shown together (timers are the long-lived, numerous ones; for call_soon handles,
# which live one iteration, the extra untrack/track would cost more than it saves). So does the
# copy call_soon_threadsafe makes: another thread's burst queues thousands of handles before the
# loop runs one, and every young collection meanwhile walked their contexts (3.11: ~70 fewer
# instructions and half the L1 misses per call; 3.13: ~45 fewer). Such a context must be
# tracked again before it can die, because CPython's context dealloc unlinks it from the GC list
# unconditionally; _gc_unhide does that for every hidden handle the loop lets go of, and
# TimerHandle.__dealloc__ is the backstop for any other way a hidden timer could die. A plain
# Handle has no such backstop (Cython's __dealloc__ wrapper would cost every call_soon handle
# ~50 instructions): the loop's own paths (_run_once, _run_ready_debug, _gc_show_pending before
# a stop or close) are the only ones that drop a hidden handle, and each shows it first.
# Contexts passed in (a task's) may be shared: never touched.


# CPython's count of new GC objects. A young collection starts once the number of GC objects
# allocated (less those freed) since the last one passes gc.get_threshold()[0]. A hidden handle
# still counted towards it, although no collection can see it: 100k tasks + gather() ran ~14%
# more collections of every generation than with handles that are no GC objects (rloop's), and
# on 3.11 that was one more full collection of the whole heap. So a plain handle (call_soon,
# call_soon_threadsafe) and its own context are taken off the count while hidden (_UNCOUNTED),
# and given back when the loop lets go of them, whether they are freed next (freeing takes one
# off again, as for any object) or live on (then they count as new, as they are to the GC).
# Timers are not taken off (_HIDDEN only): they are the handles programs keep (asyncio.sleep()
# holds its own), and giving 100k kept timers back at once started a young collection over all
# of them, cold in cache (one of 67 ms on 3.13), inside the run that let go of them.
# _pyinternal.c finds the count; where it cannot (3.14, free-threaded builds) nothing is counted.
_HIDDEN = 1
_UNCOUNTED = 2

# Handle._own_context: a context copied for the handle alone, or one handles share.
_OWN = 1
_SHARED = 2

# Shared context copies. asyncio gives every handle that call_soon, call_soon_threadsafe,
# call_later and call_at schedule without context= a copy of the caller's current context, made
# then. A copy is a new GC object around the same immutable mapping of variables, so copies
# made while the caller's variables did not change differ only in identity. The compiled core
# therefore keeps the last copy it made (loop._ctx_shared) with the mapping it was made from
# (_ctx_shared_vars), and gives it to the next such handle whose caller's current context
# still holds that very mapping. Another thread's burst of call_soon_threadsafe, a callback
# scheduling the next, or tasks that each sleep() then cost one copy instead of one each (its
# allocation, GC tracking and freeing were ~15% of a threadsafe call). fd handles are the
# exception: the loop runs one on every readiness event, and asyncio runs all those runs in
# the one copy add_reader made, so each gets its own (_add_fd_handler). What stays asyncio's:
# - Every handle starts with the variables its caller had at scheduling time: a caller whose
#   mapping differs (it set a variable since, or it is another context) gets a fresh copy,
#   which becomes the shared one.
# - Nothing a callback sets reaches another handle: Handle._run puts the shared copy's
#   mapping back once the callback has left it (and the exception handler, which runs in it
#   as the callback left it, is done). Only the loop thread enters the copy, one handle at a
#   time (a running loop cannot run a second batch inside a callback).
# - get_context() hands out a copy of the handle's own from then on (Handle.get_context).
# Differences left (docs/compat.md): `handle._context` (private) is the shared object, and a
# ContextVar token made in one such callback and reset in another resets it or raises
# LookupError, where asyncio raises ValueError (another Context). The loop drops its copy
# before it sleeps, when it stops and when it closes, so it keeps no variables' values alive
# while idle. Where _pyinternal.c does not know the Context layout, nothing is shared.


def _gc_hide(h: Handle, uncount: bool) -> None:
    if cython.compiled:
        PyObject_GC_UnTrack(h)
        own = h._own_context == _OWN
        if own:
            PyObject_GC_UnTrack(h._context)
        if uncount:
            h._gc_hidden = _UNCOUNTED  # type: ignore[misc]  # compiled-only field
            gc_uncount()
            if own:
                gc_uncount()
        else:
            h._gc_hidden = _HIDDEN  # type: ignore[misc]  # compiled-only field


def _gc_unhide(h: Handle) -> None:
    # h was hidden by _gc_hide; the caller tracks h again, or frees it. Its own context is
    # tracked again first (CPython's context dealloc expects a tracked object), and what
    # _gc_hide took off the GC's count is given back.
    if cython.compiled:
        own = h._own_context == _OWN
        if own:
            ctx = h._context  # None only after the GC's tp_clear, which a hidden h never gets
            if ctx is not None:
                PyObject_GC_Track(ctx)
        if h._gc_hidden == _UNCOUNTED:
            gc_recount()
            if own:
                gc_recount()
        h._gc_hidden = 0  # type: ignore[misc]  # compiled-only field


def _gc_show(h: Handle) -> None:
    if cython.compiled:
        if h is not None and h._gc_hidden:
            _gc_unhide(h)
            PyObject_GC_Track(h)


def _gc_release(h: Handle) -> None:
    # The caller holds one reference; any other means the handle lives on outside the loop.
    if cython.compiled:
        if h._gc_hidden:
            if h._gc_hidden == _UNCOUNTED and h._own_context != _OWN:
                # The common case (a call_soon handle or task step after it ran): what
                # _gc_unhide does for it, here, since the C compiler stopped inlining that call
                # into _run_once (~10 instructions per handle).
                gc_recount()
                h._gc_hidden = 0  # type: ignore[misc]  # compiled-only field
            else:
                _gc_unhide(h)
            if Py_REFCNT(h) > 1:
                PyObject_GC_Track(h)


class _FdEntry:
    """The loop's record of one registered fd: its reader, its writer and the kernel mask."""

    __slots__ = ("reader", "writer", "fileobj", "events")

    reader: Handle | None
    writer: Handle | None
    fileobj: Any  # what the fd was registered through (int or file object)
    events: int

    def __init__(self) -> None:
        self.reader = None
        self.writer = None
        self.fileobj = None
        self.events = 0


class LoopCore:
    """Ready queue, timers, fd table and ``_run_once``; the rest of the loop is built on top."""

    _ready: list[Any]  # Handles; slots are cleared as they run
    _spare: list[Any] | None
    _timers: TimerHeap  # of TimerHandles, by (when, seq)
    _fds: dict[int, _FdEntry]
    _fd_table: list[_FdEntry | None]  # the same entries by fd, for fds < _FD_TABLE_MAX
    _reactor: Any
    _debug: bool
    _closed: bool
    _thread_id: int | None
    _epoll: Any

    def __init__(self, reactor: Any) -> None:
        self._reactor = None  # until the self-pipe exists, so a failed init closes nothing
        # Callbacks to run, in order. _run_once swaps in a fresh list and runs the old one, so
        # what callbacks schedule waits for the next iteration (asyncio's "ntodo" rule).
        self._ready = []
        if cython.compiled:
            # The list the next iteration swaps in (the one just run, emptied). This and the
            # other compiled-only fields (_gc_hiding, _epoll) are class attributes interpreted,
            # see _INTERPRETED_CLASS_FIELDS.
            self._spare = []
        # Guards that swap against call_soon_threadsafe from other threads in the interpreted
        # core; compiled, both are single C sequences under the GIL and need no lock. Reentrant:
        # a signal handler (asyncio.Runner's Ctrl-C handler among them) runs between two
        # bytecodes of the loop thread, possibly while it holds the lock, and calls
        # call_soon_threadsafe there; a plain Lock would deadlock the loop against itself.
        # Re-entering is safe because the handler runs to completion between those bytecodes.
        self._ready_lock = threading.RLock()
        # True while poll() may be skipped when callbacks are ready: only the self-pipe is
        # registered and no signal handler needs its bytes, so no I/O could be observed.
        self._io_quiet = True
        # Pending timers by (when, seq): seq keeps timers due at the same time FIFO.
        self._timers = TimerHeap()
        self._timer_seq = 0
        self._timer_cancelled_count = 0
        self._stopping = False
        self._closed = False
        self._debug = False
        self._thread_id = None
        self._task_factory = None
        self._clock_resolution = _time.get_clock_info("monotonic").resolution
        if cython.compiled:
            # Read in debug mode only: class attributes interpreted (_INTERPRETED_CLASS_FIELDS).
            self._current_handle = None
            self.slow_callback_duration = 0.1
        self._fds = {}
        self._fd_table = []
        self._wakeup_pending = False
        if cython.compiled:
            self._gc_hiding = False
            # The context copy handles share and the variables it was made from (_shared_context).
            self._ctx_shared = None
            self._ctx_shared_vars = None
        # Self-pipe: call_soon_threadsafe and signal.set_wakeup_fd write to _wake_w; the loop
        # reads _wake_r. Non-blocking both ends: a full pipe already means "wake up".
        self._wake_r, self._wake_w = os.pipe()
        self._reactor = reactor
        # The compiled core talks to a compiled epoll reactor through C (see _epoll.wait), as
        # long as it is still the loop's reactor (tests may wrap _reactor to re-clock the loop).
        if cython.compiled:
            self._epoll = None
            if type(reactor).__name__ == "EpollReactor" and hasattr(reactor, "wait"):
                self._epoll = reactor
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._add_reader(self._wake_r, self._read_from_self)

    def get_debug(self) -> bool:
        # Here, beside the field, so that it is compiled: asyncio's C Future and Task call
        # loop.get_debug() in every __init__, i.e. for each create_future()/create_task().
        return self._debug

    # -- time and scheduling ---------------------------------------------------------------

    def time(self) -> float:
        if cython.compiled:
            t = c_monotonic()  # time.monotonic() without its call and float object
            if t >= 0.0:
                return t
        return _monotonic()

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Handle:
        # Compiled, this is the fallback of the C entry ("C entries for call_soon"), for calls
        # of another shape; interpreted, asyncio's own call_soon has the same two layers.
        return _call_soon(self, callback, args, context)

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Handle:
        return _call_soon_threadsafe(self, callback, args, context)

    def call_later(self, delay: Any, callback: Any, *args: Any, context: Any = None) -> TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        # asyncio's call_later delegates to call_at, and its errors name call_at().
        # self.time(), not the clock directly: subclasses and test clocks replace time(), and
        # asyncio's own deadlines (timeout(), wait_for()) are computed from loop.time().
        now = _loop_time(self) if cython.compiled else self.time()
        if cython.compiled and (type(delay) is float or type(delay) is int):
            # What float + float (or int) gives, in C: no float object for `now` or the sum.
            return self._call_at(now + cython.cast(cython.double, delay), callback, args,
                                 context, "call_at")
        return self._call_at(now + delay, callback, args, context, "call_at")

    def call_at(self, when: Any, callback: Any, *args: Any, context: Any = None) -> TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        return self._call_at(when, callback, args, context, "call_at")

    def _call_at(self, when: float, callback: Any, args: Any, context: Any,
                 method: str) -> TimerHandle:
        if self._closed:
            self._raise_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, method)
        elif not callable(callback):
            self._check_callback(callback, method)
        timer = _new_timer(when, callback, args, self, context)
        self._timer_seq += 1
        self._timers.push(when, self._timer_seq, timer)
        timer._scheduled = True
        if cython.compiled and self._gc_hiding:  # interpreted: never hiding
            _gc_hide(timer, False)
        return timer

    def _raise_closed(self) -> None:
        raise RuntimeError("Event loop is closed")

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def _check_callback(self, callback: Any, method: str) -> None:
        if coroutines.iscoroutine(callback) or _is_coroutine_function(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")

    def _check_thread(self) -> None:
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError("Non-thread-safe operation invoked on an event loop other "
                               "than the current one")

    def _write_to_self(self) -> None:
        # One byte per sleep is enough: _read_from_self clears the flag only after draining,
        # so a set flag always means a byte is (or is about to be) in the pipe.
        if self._wakeup_pending:
            return
        self._wakeup_pending = True
        if cython.compiled:
            # write(2) on the non-blocking pipe, keeping the GIL: os.write would release it,
            # handing the GIL to the loop thread this byte wakes up in the middle of the
            # caller's burst of call_soon_threadsafe, and back, once per wake-up.
            if self._wake_w >= 0:
                c_write(self._wake_w, b"\0", 1)  # -1 (full pipe: a wake-up is queued) is fine
            return
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # full pipe (a wake-up is already queued) or closing loop

    def _read_from_self(self) -> None:
        while True:
            try:
                data = os.read(self._wake_r, 4096)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            for b in data:
                if b:
                    # A non-zero byte is a signal number written by signal.set_wakeup_fd.
                    self._handle_signal(b)
            if len(data) < 4096:
                break
        self._wakeup_pending = False

    def _handle_signal(self, sig: int) -> None:
        pass  # signals are dispatched by the public loop layer, which overrides this

    # -- tasks and futures -----------------------------------------------------------------

    def create_future(self) -> Future[Any]:
        return _Future(loop=self)  # type: ignore[no-any-return]

    def create_task(self, coro: Any, *, name: Any = None, context: Any = None,
                    **kwargs: Any) -> Any:
        if self._closed:
            self._raise_closed()
        if self._task_factory is None:
            if kwargs:  # eager_start= and the like (3.12+), passed through to Task
                task = _Task(coro, loop=self, name=name, context=context,
                             **kwargs)
            elif name is None and context is None:
                # The common call: no keywords to build and merge.
                task = _Task(coro, loop=self)
            else:
                task = _Task(coro, loop=self, name=name, context=context)
            if self._debug:
                # Only debug mode records where a task was created; drop our own frames.
                _compat.trim_tideloop_frames(getattr(task, "_source_traceback", None))
        else:
            if context is None:
                task = self._task_factory(self, coro, **kwargs)
            else:
                task = self._task_factory(self, coro, context=context, **kwargs)
            _compat.set_task_name(task, name)
        return task

    # -- file descriptors ------------------------------------------------------------------

    def _add_reader(self, fd: Any, callback: Any, *args: Any) -> Handle:
        return self._add_fd_handler(self._fd_of(fd), callback, args, READ, fd)

    def _add_writer(self, fd: Any, callback: Any, *args: Any) -> Handle:
        return self._add_fd_handler(self._fd_of(fd), callback, args, WRITE, fd)

    def _remove_reader(self, fd: Any) -> bool:
        return self._remove_fd_handler(self._fd_of(fd), READ)

    def _remove_writer(self, fd: Any) -> bool:
        return self._remove_fd_handler(self._fd_of(fd), WRITE)

    def _fd_of(self, fileobj: Any) -> int:
        """The fd of an int or a file object; a closed object is found by identity (selectors)."""
        if type(fileobj) is int and fileobj >= 0:
            return int(fileobj)
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            # A socket closed after registration reports fileno() == -1: asyncio's selector
            # still finds its registration through the object itself, and so do we.
            for fd, entry in self._fds.items():
                if entry.fileobj is fileobj:
                    return int(fd)
            raise

    def _add_fd_handler(self, fd: int, callback: Any, args: Any, event: int,
                        fileobj: Any) -> Handle:
        if self._closed:
            self._raise_closed()
        if fd < 0:
            raise ValueError(f"Invalid file descriptor: {fd}")
        # A context of its own, never a shared copy (_shared_context): the loop runs this handle
        # on every readiness event, and asyncio runs each run in the same context, so what one
        # run sets, the next sees.
        h = _new_handle(callback, args, self, copy_context())
        entry = self._fds.get(fd)
        if entry is None:
            entry = _FdEntry()
            self._reactor.register(fd, event)
            entry.events = event
            self._fds[fd] = entry
            if fd < _FD_TABLE_MAX:
                table = self._fd_table
                if fd >= len(table):
                    table.extend([None] * (fd + 1 - len(table)))
                table[fd] = entry
            self._update_io_quiet()
        elif not entry.events & event:
            # Sticky registrations: the kernel is only told when the interest mask changes.
            self._reactor.modify(fd, entry.events | event)
            entry.events |= event
        entry.fileobj = fileobj
        if event == READ:
            old = entry.reader
            entry.reader = h
        else:
            old = entry.writer
            entry.writer = h
        if old is not None:
            old.cancel()
        return h

    def _remove_fd_handler(self, fd: int, event: int) -> bool:
        if self._closed:
            return False
        entry = self._fds.get(fd)
        if entry is None or not entry.events & event:
            return False
        if event == READ:
            old = entry.reader
            entry.reader = None
        else:
            old = entry.writer
            entry.writer = None
        entry.events &= ~event
        if entry.events:
            self._reactor.modify(fd, entry.events)
        else:
            del self._fds[fd]
            if fd < len(self._fd_table):
                self._fd_table[fd] = None
            self._reactor.unregister(fd)
            self._update_io_quiet()
        if old is not None:
            old.cancel()
            return True
        return False

    def _update_io_quiet(self) -> None:
        self._io_quiet = len(self._fds) <= 1 and not self._signals_watched()

    def _signals_watched(self) -> bool:
        return False  # the public loop layer, which owns signal handlers, overrides this

    def _process_events(self, events: list[tuple[int, int]]) -> None:
        for fd, mask in events:
            self._dispatch(fd, mask)

    def _process_epoll(self, n: int) -> None:
        # The compiled epoll path: events are read from the reactor's C array.
        ep = self._epoll
        for i in range(n):
            self._dispatch(ep.ready_fd(i), ep.ready_mask(i))

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _dispatch(self, fd: int, mask: int) -> None:
        """Queue the reader and/or writer of a ready fd; drop cancelled ones (asyncio's rule)."""
        table = self._fd_table
        if fd < len(table):
            # fd >= 0 (the reactor reports registered fds only): the index needs no check.
            found = table[fd]
        elif fd < _FD_TABLE_MAX:
            return
        else:
            found = self._fds.get(fd)
        if found is None:
            return
        # Only _FdEntry objects go into the table and the dict: no type test needed. (Not
        # interpreted: there cython.cast is a Python function of Cython's, or the shim's.)
        entry = cython.cast(_FdEntry, found) if cython.compiled else found
        if mask & READ:
            h = entry.reader
            if h is not None:
                if h._cancelled:
                    self._remove_fd_handler(fd, READ)
                else:
                    self._ready.append(h)
        if mask & WRITE:
            h = entry.writer
            if h is not None:
                if h._cancelled:
                    self._remove_fd_handler(fd, WRITE)
                else:
                    self._ready.append(h)

    # -- running ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True

    def _run_forever_inner(self) -> None:
        # A running loop is alive (its caller's frame holds it), so the one-shot handles it owns
        # meanwhile need no cyclic GC: hide them (compiled core), and show what is still
        # pending once it stops, when a dropped loop must be collectable again.
        if cython.compiled:
            self._gc_hiding = True
        try:
            if _overrides_run_once(self):
                while True:
                    self._run_once()
                    if self._stopping:
                        break
            else:
                # Compiled, LoopCore._run_once(self) is a plain C call. self._run_once() would
                # first look for a Python override on every iteration, and on Python 3.12+ (no
                # dict version tags for Cython to cache that check with) that costs a getattr
                # plus a bound method each time: ~800 instructions per iteration. Checked once
                # per run.
                while True:
                    LoopCore._run_once(self)
                    if self._stopping:
                        break
        finally:
            if cython.compiled:
                self._gc_hiding = False
                self._gc_show_pending()
                self._ctx_set_shared(None, None)

    def _ctx_set_shared(self, shared: Any, shared_vars: Any) -> None:
        """Replace (or, with None, drop) the shared context copy; handles using it keep it."""
        if cython.compiled:
            # Both fields change before either old object may be freed (these locals hold
            # them): freeing runs finalizers, which may let another thread in, and it must
            # never find a context paired with variables it was not copied from.
            old_shared = self._ctx_shared
            old_vars = self._ctx_shared_vars
            self._ctx_shared = shared
            self._ctx_shared_vars = shared_vars
            del old_shared, old_vars

    def _gc_show_pending(self) -> None:
        for h in self._ready:
            _gc_show(h)
        for t in self._timers.items():
            if cython.compiled:
                _gc_show(t)

    def _run_once(self) -> None:
        """One iteration: drop cancelled timers, wait for I/O, move due timers, run what's ready."""
        timers = self._timers
        ready = self._ready
        # The number of timers, kept by hand below: interpreted, every size() is a method call,
        # so the heap's list is measured directly there (once per iteration).
        ntimers = timers.size() if cython.compiled else len(timers._list)
        if (ntimers > _MIN_SCHEDULED_TIMER_HANDLES
                and self._timer_cancelled_count * 2 > ntimers):
            # Mostly cancelled: rebuild once instead of popping them one by one later.
            for t in timers.remove_cancelled():
                t._scheduled = False
                if cython.compiled:
                    _gc_show(t)
            self._timer_cancelled_count = 0
            ntimers = timers.size()
        else:
            while True:  # not `while ntimers:`, see the note on the loop over `ready` below
                if not ntimers:
                    break
                t = timers.top()
                if not t._cancelled:
                    break
                timers.pop()
                ntimers -= 1
                self._timer_cancelled_count -= 1
                t._scheduled = False
                if cython.compiled:
                    _gc_release(t)

        if ready or self._stopping:
            timeout = 0.0
            if self._io_quiet:
                # Nothing but the self-pipe is watched: a poll could only find wake-up bytes
                # for callbacks that are already in _ready. Skip the syscall.
                timeout = -2.0
        elif ntimers:
            timeout = timers.top_when() - (_loop_time(self) if cython.compiled else self.time())
            if not timeout > 0.0:
                timeout = 0.0  # due, or NaN: asyncio's max(0, nan) runs such a timer at once
            elif timeout > MAX_TIMEOUT:
                timeout = MAX_TIMEOUT
        else:
            timeout = -1.0
        if cython.compiled and self._ctx_shared is not None and (timeout > 0.0
                                                                  or timeout == -1.0):
            self._ctx_set_shared(None, None)  # about to sleep: keep no variables alive
        if timeout == -2.0:
            pass
        elif cython.compiled and self._epoll is not None and self._epoll is self._reactor:
            n = self._epoll.wait(timeout)
            if n:
                self._process_epoll(n)
        else:
            events = self._reactor.poll(timeout)
            if events:
                self._process_events(events)

        if ntimers:  # I/O dispatch above only queues callbacks: no timer came or went
            now = _loop_time(self) if cython.compiled else self.time()
            end_time = now + self._clock_resolution
            while True:  # not `while ntimers:`, see the note on the loop over `ready` below
                if not ntimers or timers.top_when() >= end_time:
                    break
                t = timers.pop()
                ntimers -= 1
                t._scheduled = False
                ready.append(t)

        if not ready:
            return
        if cython.compiled:
            spare = self._spare
            self._ready = spare if spare is not None else []
            self._spare = None  # until `ready` is empty again
        else:
            # acquire/release, not `with`: a with statement binds __enter__ and __exit__ (two
            # method objects) on every iteration; nothing between the two calls can raise.
            lock = self._ready_lock
            lock.acquire()
            self._ready = []
            lock.release()
        if self._debug:
            self._run_ready_debug(ready)  # leaves None in the slots: not reused
            return
        if cython.compiled:
            # The batch is about to have empty (NULL) slots: no one may reach it meanwhile,
            # not even gc.get_objects() (its handles are the loop's, reachable through it).
            PyObject_GC_UnTrack(ready)
        i = 0
        n = len(ready)
        # A batch this long no longer fits in the L1 cache, and its handles were made long
        # before (100k due timers, gather's first steps): each handle's first touch is a cache
        # miss, which a prefetch one handle ahead overlaps with running the current one. Short
        # batches are hot already, and the prefetch would only cost instructions.
        deep = n > 512
        try:
            # `while True` with a break, not `while i < n`: on Python 3.11 only an unconditional
            # backward jump (and a call) warms a code object up for specialization, and a
            # conditional loop never does. _run_once is entered only a few times in a run of
            # large batches (gather() of 100k tasks), so its loops stayed generic bytecode
            # there: ~1,400 instructions per task more than asyncio's `for` loop. Compiled, the
            # same C loop either way.
            while True:
                if i >= n:
                    break
                # Drop the queue's reference before running, as asyncio's popleft does: a
                # finished task must be collectable as soon as its step returns.
                if cython.compiled:
                    h = list_take(ready, i)
                    if deep:
                        prefetch_item(ready, i + 1)
                else:
                    h = ready[i]
                    ready[i] = None
                i += 1
                if not h._cancelled:
                    h._run()
                if cython.compiled:
                    _gc_release(h)
        except BaseException:
            # SystemExit/KeyboardInterrupt unwinding run_forever: what did not run yet stays
            # first in line for the next run, as it would in asyncio's deque.
            if cython.compiled:
                _gc_release(h)
            self._requeue(ready, i)
            if cython.compiled:
                del ready[i:]
                _recycle(self, ready)
            raise
        h = None  # this frame may outlive the call (a traceback's f_back): let go of the handle
        if cython.compiled:
            _recycle(self, ready)  # every slot was taken above

    def _requeue(self, todo: list[Any], start: int) -> None:
        if start < len(todo):
            self._ready[0:0] = todo[start:]

    def _run_ready_debug(self, ready: list[Any]) -> None:
        i = 0
        n = len(ready)
        while i < n:
            h = ready[i]
            ready[i] = None
            i += 1
            if h._cancelled:
                if cython.compiled:
                    _gc_release(h)
                continue
            self._current_handle = h
            t0 = _monotonic()
            try:
                h._run()
            except BaseException:
                if cython.compiled:
                    _gc_release(h)
                self._requeue(ready, i)
                raise
            finally:
                dt = _monotonic() - t0
                self._current_handle = None
            if dt >= self.slow_callback_duration:
                self._log_slow_callback(h, dt)
            if cython.compiled:
                _gc_release(h)
        h = None  # as in _run_once: a surviving frame must not hold the last handle

    def _log_slow_callback(self, handle: Any, seconds: float) -> None:
        pass  # overridden by the public loop layer (logging lives there)

    def _report_callback_error(self, handle: Any, exc: BaseException) -> None:
        pass  # overridden by the public loop layer

    def _close_core(self) -> None:
        """Forget every callback and release the reactor and the self-pipe (idempotent)."""
        self._closed = True
        if self._reactor is None:
            return  # __init__ failed before owning anything
        if cython.compiled:
            self._gc_show_pending()
            self._ctx_set_shared(None, None)
        self._ready.clear()
        for t in self._timers.take_all():
            t._scheduled = False
        self._timer_cancelled_count = 0
        for entry in self._fds.values():
            if entry.reader is not None:
                entry.reader.cancel()
            if entry.writer is not None:
                entry.writer.cancel()
        self._fds.clear()
        self._fd_table.clear()
        if self._wake_r >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        self._reactor.close()


# C entries for call_soon. asyncio's C Future and Task schedule every callback and task step
# with loop.call_soon(callback, arg, context=ctx), a vectorcall with one keyword. Cython's entry
# for `def call_soon(self, callback, *args, context=None)` spent ~300 instructions on that
# before the work began (generic keyword matching, its function object's call layer, argument
# checks). Compiled, the function objects of call_soon and call_soon_threadsafe therefore get a
# C entry of their own (_sched_sys.pxd, in their vectorcall slot): it checks the loop's type
# (cached), compares the keyword by identity, packs *args into a tuple and calls _call_soon or
# _call_soon_threadsafe. Every other shape of call goes on to Cython's entry, so errors keep
# their messages; the function objects stay what they were for introspection, and subclasses
# that override a method and call super() reach the entry like any caller.


def _call_soon(loop: Any, callback: Any, args: Any, context: Any) -> Handle:
    """loop.call_soon(callback, *args, context=context): the work, for both entries."""
    if cython.compiled:
        self = cython.cast(LoopCore, loop)  # only ever called with a LoopCore (the entries)
    else:
        self = loop
    if self._closed:
        self._raise_closed()
    if self._debug:
        self._check_thread()
        self._check_callback(callback, "call_soon")
    elif not callable(callback):
        self._check_callback(callback, "call_soon")
    h = _new_handle(callback, args, self, context)
    self._ready.append(h)
    if cython.compiled and self._gc_hiding:  # interpreted: never hiding
        _gc_hide(h, True)  # once the loop holds it
    return h


def _call_soon_threadsafe(loop: Any, callback: Any, args: Any, context: Any) -> Handle:
    """loop.call_soon_threadsafe(callback, *args, context=context): the work."""
    if cython.compiled:
        self = cython.cast(LoopCore, loop)
    else:
        self = loop
    if self._closed:
        self._raise_closed()
    if self._debug or not callable(callback):
        self._check_callback(callback, "call_soon_threadsafe")
    h = _new_handle(callback, args, self, context)
    if cython.compiled:
        self._ready.append(h)
    else:
        with self._ready_lock:
            self._ready.append(h)
    if cython.compiled and self._gc_hiding:  # interpreted: never hiding
        # A context copied for this callback alone (where none is shared) is hidden with
        # it, as a timer's is: a burst from another thread queues many handles before the
        # loop runs any, and every young collection meanwhile would walk their contexts.
        if context is None and h._own_context != _SHARED:
            h._own_context = _OWN  # copied by _init_handle, for this handle alone
        _gc_hide(h, True)
    if not self._wakeup_pending:  # one wake-up byte per sleep is enough (_write_to_self)
        self._write_to_self()
    return h


if cython.compiled:
    sched_install(LoopCore, LoopCore.__dict__["call_soon"], 0,
                  cython.cast(cython.p_void, _call_soon))
    sched_install(LoopCore, LoopCore.__dict__["call_soon_threadsafe"], 1,
                  cython.cast(cython.p_void, _call_soon_threadsafe))

def _loop_time(loop: LoopCore) -> float:
    """``loop.time()``, honouring overrides, without Cython's per-call override lookup."""
    if cython.compiled and resolves_to(loop, "time", _LOOPCORE_TIME):
        return LoopCore.time(loop)  # a C call: nothing replaces time() on this loop
    return loop.time()


def _overrides_run_once(loop: LoopCore) -> bool:
    """True if a subclass or the instance itself replaces ``_run_once`` (tests do that)."""
    # Through the type's dict: compiled, the expression LoopCore._run_once would be a fresh
    # wrapper of the C function, never the method object that instances are bound to.
    return getattr(loop._run_once, "__func__", None) is not _LOOPCORE_DICT["_run_once"]


if not cython.compiled:
    # Interpreted, the loop's compiled-only fields, and the defaults of two read only in debug
    # mode, are class attributes, not instance ones. With everything LoopBase and the mixins
    # add, an EventLoop had 32 instance attributes, and an instance dict keeps sharing its
    # class's keys only up to 29 (measured on 3.11 and 3.13; lazily added ones such as
    # _tl_ops count too): beyond that each loop's __dict__ became an ordinary dict. Python 3.11
    # then specializes no method load on the loop (`loop.call_soon(...)`,
    # `self._loop._add_reader(...)` each took a generic lookup), and 3.11-3.13 read its fields
    # through the slower hinted path. Compiled, they are C fields (_core.pxd).
    _INTERPRETED_CLASS_FIELDS: dict[str, Any] = {
        "_spare": None, "_gc_hiding": False, "_epoll": None,
        "_current_handle": None, "slow_callback_duration": 0.1,
    }
    for _name, _value in _INTERPRETED_CLASS_FIELDS.items():
        setattr(LoopCore, _name, _value)
    del _name, _value

_LOOPCORE_DICT: Any = LoopCore.__dict__
_LOOPCORE_TIME: Any = _LOOPCORE_DICT["time"]


def _fileobj_to_fd(fileobj: Any) -> int:
    """An fd from an int or an object with fileno(), with the errors selectors gives."""
    if isinstance(fileobj, int):
        fd = int(fileobj)
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _is_coroutine_function(func: Any) -> bool:
    # What asyncio's debug check looks for; inspect's version also sees markcoroutinefunction
    # and, unlike asyncio.iscoroutinefunction, is not deprecated on 3.14.
    return inspect.iscoroutinefunction(func)
