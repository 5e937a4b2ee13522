# Types for _timerheap.py when Cython compiles it (pure Python mode).
cimport cython
from cpython.ref cimport PyObject


cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item


cdef struct _Key:
    double when
    Py_ssize_t seq

# Pointer types by name, since @cython.locals takes names.
ctypedef _Key *_KeyPtr
ctypedef PyObject *_ObjPtr
ctypedef PyObject **_ObjArray


@cython.final
cdef class TimerHeap:
    cdef _Key *_keys
    cdef Py_ssize_t _cap
    cdef list _items
    cdef list _list

    cpdef Py_ssize_t size(self)
    @cython.locals(pos=Py_ssize_t, parent=Py_ssize_t, keys=_KeyPtr,
                   objs=_ObjArray)
    cpdef push(self, double when, Py_ssize_t seq, object item)
    cpdef object top(self)
    cpdef double top_when(self)
    @cython.locals(n=Py_ssize_t, pos=Py_ssize_t, child=Py_ssize_t, best=Py_ssize_t,
                   end=Py_ssize_t, c=Py_ssize_t, parent=Py_ssize_t, last_key=_Key,
                   last_obj=_ObjPtr, keys=_KeyPtr,
                   objs=_ObjArray)
    cpdef object pop(self)
    cpdef list items(self)
    cpdef list take_all(self)
    @cython.locals(i=Py_ssize_t, keys=_KeyPtr, removed=list, old=list)
    cpdef list remove_cancelled(self)
    @cython.locals(cap=Py_ssize_t)
    cdef _grow(self)


cdef inline PyObject **_ob_item(list items)
cdef inline bint _key_lt(double when_a, Py_ssize_t seq_a, double when_b, Py_ssize_t seq_b)
cdef inline Py_ssize_t _key_lt_flat(double when_a, Py_ssize_t seq_a, double when_b,
                                    Py_ssize_t seq_b)
