# Types for _epoll.py when compiled: the loop core calls wait()/ready_fd()/ready_mask() through C,
# and the kernel's event array is a C array inside the reactor, never a Python list.
cimport cython

from tideloop._epoll_sys cimport epoll_event

cdef enum:
    MAX_EVENTS = 1024

# _reactor's READ/WRITE as C ints: ready_mask runs once per event, and with Python ints it did two
# module-global lookups and two boxed ORs (~60 instructions) per event.
cdef int READ, WRITE

@cython.locals(ms=int)
cdef inline int _timeout_ms_c(double timeout) noexcept


cdef class EpollReactor:
    cdef object _epoll
    cdef int _epfd
    cdef public str name
    cdef epoll_event _events[MAX_EVENTS]

    @cython.locals(ms=int, n=int, deadline=double, remaining=double)
    cpdef int wait(self, double timeout) except -1
    cdef int ready_fd(self, int i) noexcept
    @cython.locals(mask=int)
    cdef int ready_mask(self, int i) noexcept
