# C declarations for _sockio.py: recv(2)/send(2) on non-blocking sockets.
cdef extern from "sys/socket.h" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    enum:
        MSG_NOSIGNAL
        MSG_DONTWAIT

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
            ssize_t n = recv(fd, PyBytes_AS_STRING(data), (size_t)size, flags);
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
