# Types for _sockio.py when compiled: one static read buffer, C-typed sizes.
cimport cython

cdef enum:
    READ_SIZE = 262144

cdef char _read_buf[READ_SIZE]
# Whether the next read goes straight into a new bytes object (see recv_bytes).
cdef bint _recv_direct
cdef Py_ssize_t DIRECT_MIN

@cython.locals(n=Py_ssize_t, data=bytes)
cpdef bytes recv_bytes(object sock, int fd, object view)
@cython.locals(n=Py_ssize_t)
cpdef Py_ssize_t send_bytes(object sock, int fd, object data) except -1
cpdef object try_recv(object sock, object n)
@cython.locals(n=Py_ssize_t, fd=int)
cpdef Py_ssize_t try_send(object sock, object data) except -1
