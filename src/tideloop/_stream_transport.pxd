# Types for _stream_transport.py when compiled: the hot state of a stream transport as C fields.
cimport cython


@cython.final
cdef class _StreamCore:
    cdef public int _sock_fd
    cdef public object _protocol
    cdef public bint _stream_fast
    cdef public Py_ssize_t _conn_lost
    cdef public object _buffer
    cdef public bint _eof
    cdef public object _empty_waiter


cdef _StreamCore _core_of(object transport)

# SocketTransport's _core slot, read at its offset in the instance for the exact class (a generic
# attribute read is a type lookup plus a member descriptor call: ~90 instructions, twice per echo).
cdef object _fast_type
cdef Py_ssize_t _core_offset, _closing_offset

cdef extern from *:
    """
    #include "structmember.h"  /* PyMemberDef before Python 3.12 */

    /* The byte offset of a __slots__ member (a member descriptor) in instances, or -1. */
    static Py_ssize_t tl_slot_offset(PyObject *descr) {
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type))
            return -1;
        return ((PyMemberDescrObject *)descr)->d_member->offset;
    }

    /* getattr(obj, name), read straight from the slot at `offset` when obj's type is exactly
       `tp` (the class that defined that slot) and the slot is set; what a member descriptor
       does, minus looking it up. Anything else takes the ordinary attribute lookup. */
    static PyObject *tl_slot_get(PyObject *obj, PyObject *tp, Py_ssize_t offset, PyObject *name) {
        if ((PyObject *)Py_TYPE(obj) == tp && offset > 0) {
            PyObject *value = *(PyObject **)((char *)obj + offset);
            if (value != NULL) {
                Py_INCREF(value);
                return value;
            }
        }
        return PyObject_GetAttr(obj, name);
    }
    """
    Py_ssize_t tl_slot_offset(object descr) except? -2
    object tl_slot_get(object obj, object tp, Py_ssize_t offset, object name)

@cython.locals(data=bytes)
cpdef _read_event(_StreamCore core, object transport)
cdef _fatal_pending(object transport, str message)
