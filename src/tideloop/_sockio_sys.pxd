# C declarations for _sockio.py: recv(2)/send(2) on non-blocking sockets.
cdef extern from "sys/socket.h" nogil:
    enum:
        MSG_NOSIGNAL
        MSG_DONTWAIT

cdef extern from *:
    """
    #include <sys/socket.h>
    #if defined(__linux__)
    #include <sys/syscall.h>
    #include <unistd.h>
    #endif

    /* recv(2)/send(2) as the system calls themselves on Linux. glibc's recv and send are
       pthread cancellation points, so every call switches asynchronous cancellation on and off
       around the syscall (~30 instructions each way, measured with callgrind); nothing in a
       Python process uses pthread cancellation, and these sockets never block. Same arguments,
       results and errno as the libc functions (recv(fd, b, n, f) is recvfrom(fd, b, n, f, 0, 0),
       which is also how glibc implements it where there is no recv syscall). */
    #if defined(__linux__) && defined(SYS_recvfrom) && defined(SYS_sendto)
    static inline ssize_t tl_recv(int fd, void *buf, size_t n, int flags) {
        return (ssize_t)syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
    }
    static inline ssize_t tl_send(int fd, const void *buf, size_t n, int flags) {
        return (ssize_t)syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
    }
    #else
    #define tl_recv recv
    #define tl_send send
    #endif
    """
    ssize_t recv "tl_recv" (int fd, void *buf, size_t n, int flags) nogil
    ssize_t send "tl_send" (int fd, const void *buf, size_t n, int flags) nogil

cdef extern from *:
    """
    #include <errno.h>
    #include <sys/socket.h>

    /* recv(2) straight into a new bytes object of `size` bytes, then shrink it to what arrived.
       The shrink is a realloc() in place, so a large read costs no copy; the object must be
       resized through its only reference, which is why this is C and not Cython.
       With `none_if_again`, "nothing there yet" returns None instead of raising
       BlockingIOError: building that exception costs more than the recv itself. */
    static PyObject *tl_recv_new_bytes(int fd, Py_ssize_t size, int flags, int none_if_again) {
        PyObject *data = PyBytes_FromStringAndSize(NULL, size);
        if (data == NULL)
            return NULL;
        for (;;) {
            ssize_t n = tl_recv(fd, PyBytes_AS_STRING(data), (size_t)size, flags);
            if (n >= 0) {
                if (n != size && _PyBytes_Resize(&data, (Py_ssize_t)n) < 0)
                    return NULL;  /* _PyBytes_Resize released data */
                return data;
            }
            if (none_if_again && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                Py_DECREF(data);
                Py_RETURN_NONE;
            }
            if (errno != EINTR) {
                Py_DECREF(data);
                return PyErr_SetFromErrno(PyExc_OSError);
            }
            if (PyErr_CheckSignals() < 0) {
                Py_DECREF(data);
                return NULL;
            }
        }
    }
    """
    object tl_recv_new_bytes(int fd, Py_ssize_t size, int flags, int none_if_again)


cdef extern from *:
    """
    #include <errno.h>

    /* send(2) of a whole bytes object as a status: the count sent, 0 when the socket takes
       nothing now (EAGAIN: what the caller treats as BlockingIOError), or -1 with the
       exception pending (OSError from errno, or what a signal handler raised after EINTR).
       A status, not an exception, so a transport's write needs no try block on its way. */
    static Py_ssize_t tl_send_bytes_status(int fd, PyObject *data) {
        for (;;) {
            ssize_t n = tl_send(fd, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data),
                                MSG_NOSIGNAL);
            if (n >= 0)
                return (Py_ssize_t)n;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno != EINTR) {
                PyErr_SetFromErrno(PyExc_OSError);
                return -1;
            }
            if (PyErr_CheckSignals() < 0)
                return -1;
        }
    }
    """
    Py_ssize_t send_status "tl_send_bytes_status" (int fd, bytes data) noexcept
