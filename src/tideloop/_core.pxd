# Types for _core.py when Cython compiles it (pure Python mode). Reads like a header: the fields
# every hot path touches are C fields, and the methods _run_once calls are C calls.
cimport cython

cdef class LoopCore


@cython.freelist(256)
cdef class Handle:
    cdef public object _callback
    cdef public object _args
    cdef public bint _cancelled
    cdef public LoopCore _loop
    cdef public object _source_traceback
    cdef public object _repr
    cdef public object _context
    cdef object __weakref__

    cpdef cancel(self)
    cpdef _run(self)


cdef class TimerHandle(Handle):
    cdef public double _when
    cdef public bint _scheduled


@cython.final
cdef class _FdEntry:
    cdef public Handle reader
    cdef public Handle writer
    cdef public int events


cdef _init_handle(Handle h, object callback, object args, LoopCore loop, object context)
cdef Handle _new_handle(object callback, object args, LoopCore loop, object context)
cdef TimerHandle _new_timer(double when, object callback, object args, LoopCore loop,
                            object context)


cdef class LoopCore:
    cdef public object _ready
    cdef public list _scheduled
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
    cdef public dict _fds
    cdef public bint _wakeup_pending
    cdef public int _wake_r
    cdef public int _wake_w
    cdef object __weakref__

    cpdef double time(self)
    cdef _call_at(self, double when, object callback, object args, object context, str method)
    cpdef _write_to_self(self)
    cdef Handle _add_fd_handler(self, int fd, object callback, object args, int event)
    cdef bint _remove_fd_handler(self, int fd, int event) except -1
    cdef _process_events(self, list events)
    cpdef _run_once(self)
    cdef _run_ready_debug(self, Py_ssize_t ntodo)
