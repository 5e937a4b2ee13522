# C declarations for _core.py: per-object control of the cyclic GC (CPython's object.h).
cdef extern from "Python.h":
    void PyObject_GC_Track(object op)
    void PyObject_GC_UnTrack(object op)
    Py_ssize_t Py_REFCNT(object op)

cdef extern from "_pyinternal.h":
    pass

cdef extern from *:
    """
    /* CPython's count of GC allocations since the last young collection (see _pyinternal.c),
       or NULL where its layout is unknown and these are no-ops. gc_uncount takes one
       allocation off (never below zero: a collection may have just reset it, and then the
       later gc_recount errs towards an earlier collection, never a later one); gc_recount
       puts one back. Both run with the GIL held, as the allocator's own updates do. */
    static int *__tideloop_gc_young = NULL;
    static void __tideloop_gc_count_init(void) {
        __tideloop_gc_young = tideloop_gc_young_count();
    }
    static CYTHON_INLINE void __tideloop_gc_uncount(void) {
        int *c = __tideloop_gc_young;
        if (c != NULL && *c > 0)
            (*c)--;
    }
    static CYTHON_INLINE void __tideloop_gc_recount(void) {
        int *c = __tideloop_gc_young;
        if (c != NULL)
            (*c)++;
    }
    """
    void gc_count_init "__tideloop_gc_count_init" ()
    void gc_uncount "__tideloop_gc_uncount" ()
    void gc_recount "__tideloop_gc_recount" ()
