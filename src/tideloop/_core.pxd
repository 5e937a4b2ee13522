# Types for _core.py when Cython compiles it (pure Python mode). Reads like a header: the fields
# every hot path touches are C fields, and the methods _run_once calls are C calls.
cimport cython

from tideloop._epoll cimport EpollReactor
from tideloop._timerheap cimport TimerHeap

cdef class LoopCore

# Module constants the hot paths read, as C globals: Cython caches module-dict lookups with dict
# version tags, which it cannot use on Python 3.12+, where each read is a dict lookup (~120
# instructions). Python code outside this module does not read them.
cdef Py_ssize_t _MIN_SCHEDULED_TIMER_HANDLES, _FD_TABLE_MAX
cdef object _monotonic
cdef int READ, WRITE
cdef double MAX_TIMEOUT
cdef char _HIDDEN, _UNCOUNTED, _OWN, _SHARED
cdef object _LOOPCORE_TIME
cdef object _Task, _Future
cdef inline double _loop_time(LoopCore loop) except? -1.0


cdef class Handle:
    # Objects first, then the C ints side by side: C pads each int between pointers to 8 bytes,
    # and with TimerHandle's fields below, packing them keeps a timer in a smaller allocator
    # size class (a large timer set is bounded by memory traffic, not instructions).
    cdef public object _callback
    cdef public object _args
    cdef public LoopCore _loop
    cdef object _debug_info  # the _source_traceback and _repr properties, see _core.py
    cdef readonly object _context
    cdef object __weakref__
    cdef public bint _cancelled
    # Flags as chars: beside _cancelled they fit the 8 bytes one bint took with its padding.
    cdef char _own_context
    cdef char _gc_hidden  # compiled only: 0, _HIDDEN or _UNCOUNTED (see _gc_hide)

    cpdef cancel(self)
    @cython.locals(ctx=object, saved=object)
    cpdef _run(self)
    cdef _run_failed(self)
    cdef _run_failed_shared(self, object ctx, object saved)


cdef class TimerHandle(Handle):
    cdef public double _when
    cdef public bint _scheduled


@cython.final
cdef class _FdEntry:
    cdef public Handle reader
    cdef public Handle writer
    cdef public object fileobj
    cdef public int events



cdef inline _recycle(LoopCore loop, list ready)
# The GC helpers cannot fail: C void, so no None result or error check at each call.
cdef inline void _gc_hide(Handle h, bint uncount) noexcept
cdef inline void _gc_unhide(Handle h) noexcept
cdef inline void _gc_show(Handle h) noexcept
cdef inline void _gc_release(Handle h) noexcept
cdef _init_handle(Handle h, object callback, object args, LoopCore loop, object context)
@cython.locals(h=Handle)
cdef Handle _new_handle(object callback, object args, LoopCore loop, object context)
cdef object _shared_context(LoopCore loop)
@cython.locals(h=TimerHandle)
cdef TimerHandle _new_timer(double when, object callback, object args, LoopCore loop,
                            object context)


cdef class LoopCore:
    cdef public list _ready
    cdef list _spare
    cdef object _ready_lock
    cdef public bint _io_quiet
    cdef public TimerHeap _timers
    cdef public Py_ssize_t _timer_seq
    cdef public Py_ssize_t _timer_cancelled_count
    cdef public bint _stopping
    cdef public bint _closed
    cdef public bint _debug
    cdef public object _thread_id
    cdef public object _current_handle
    cdef public object _task_factory
    cdef public double _clock_resolution
    cdef public double slow_callback_duration
    cdef public object _reactor
    cdef EpollReactor _epoll
    cdef public dict _fds
    cdef list _fd_table
    cdef public bint _wakeup_pending
    cdef bint _gc_hiding
    cdef object _ctx_shared
    cdef object _ctx_shared_vars
    cdef public int _wake_r
    cdef public int _wake_w
    # Set by LoopBase.__init__ (_loop.py). As slots, an EventLoop needs no instance __dict__:
    # CPython 3.12+ specializes `loop.call_soon` (LOAD_ATTR_METHOD_LAZY_DICT) only while the
    # instance has none, and C callers (asyncio's Task) skip a dict lookup per method call.
    cdef public object _signal_handlers
    cdef public object _default_executor
    cdef public object _executor_shutdown_called
    cdef public object _exception_handler
    cdef public object _asyncgens
    cdef public object _asyncgens_shutdown_called
    cdef public object _old_agen_hooks
    cdef public object _coroutine_origin_tracking_enabled
    cdef public object _coroutine_origin_tracking_saved_depth
    cdef public object _transports
    cdef object __weakref__

    cpdef double time(self)
    @cython.locals(timer=TimerHandle)
    cdef _call_at(self, double when, object callback, object args, object context, str method)
    cpdef _write_to_self(self)
    @cython.locals(entry=_FdEntry, h=Handle, old=Handle, table=list)
    cdef Handle _add_fd_handler(self, int fd, object callback, object args, int event,
                                object fileobj)
    @cython.locals(entry=_FdEntry, old=Handle)
    cdef bint _remove_fd_handler(self, int fd, int event) except -1
    cdef _process_events(self, list events)
    @cython.locals(i=int, ep=EpollReactor)
    cdef _process_epoll(self, int n)
    @cython.locals(entry=_FdEntry, h=Handle, table=list, found=object)
    cdef _dispatch(self, int fd, int mask)
    @cython.locals(timers=TimerHeap, ready=list, spare=list, n=Py_ssize_t, i=Py_ssize_t, now=double, ntimers=Py_ssize_t,
                   t=TimerHandle, h=Handle, timeout=double, end_time=double, deep=bint)
    cpdef _run_once(self)
    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, h=Handle, t0=double, dt=double)
    cdef _run_ready_debug(self, list ready)
    cdef _requeue(self, list todo, Py_ssize_t start)
    @cython.locals(t=TimerHandle)
    cdef _gc_show_pending(self)
    cdef _ctx_set_shared(self, object shared, object shared_vars)


# The work of call_soon and call_soon_threadsafe, reached from their C entries (_sched_sys.pxd):
# C signatures of plain objects, as the entries call them.
@cython.locals(self=LoopCore, h=Handle)
cdef object _call_soon(object loop, object callback, object args, object context)
@cython.locals(self=LoopCore, h=Handle)
cdef object _call_soon_threadsafe(object loop, object callback, object args, object context)
