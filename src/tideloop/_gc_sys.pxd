# C declarations for _core.py: per-object control of the cyclic GC (CPython's object.h).
cdef extern from "Python.h":
    void PyObject_GC_Track(object op)
    void PyObject_GC_UnTrack(object op)
    bint PyObject_GC_IsTracked(object op)
    Py_ssize_t Py_REFCNT(object op)
