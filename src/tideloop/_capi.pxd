# C helpers for the compiled core, cimported by _core.py under `if cython.compiled`. Only a .pxd:
# nothing here is compiled into a module of its own, and the interpreted core never sees it.

from cpython.ref cimport PyObject

cdef extern from *:
    """
    /* f(*args) for a handle's callback. With a tuple of arguments the callee's vectorcall
       slot is called directly (as PEP 590 allows callers to): Cython's generic call goes
       through tp_call, a recursion check and PyVectorcall_Call, and Python 3.13 made each of
       those an out-of-line call that reads the thread state through TLS. The callee's own frame
       still checks recursion, as for any vectorcall. */
    static CYTHON_INLINE PyObject *__tideloop_call_args(PyObject *f, PyObject *args) {
        PyObject *t, *r;
        vectorcallfunc vc;
        if (PyTuple_CheckExact(args)) {
            vc = PyVectorcall_Function(f);
            if (vc != NULL)
                return vc(f, PySequence_Fast_ITEMS(args), (size_t)PyTuple_GET_SIZE(args), NULL);
            return PyObject_Call(f, args, NULL);
        }
        t = PySequence_Tuple(args);
        if (t == NULL)
            return NULL;
        r = PyObject_Call(f, t, NULL);
        Py_DECREF(t);
        return r;
    }
    """
    object call_args "__tideloop_call_args" (object f, object args)


cdef extern from *:
    """
    /* A handle's body, ctx.run(f, *args), as a status instead of an exception: 0 when f
       returned (its result dropped), -1 with the exception pending when entering the context,
       f itself or leaving the context failed. The caller's hot path then needs no try block:
       Cython saves and restores the handled-exception state at every try it enters (on 3.13
       with two thread-state reads through TLS), ~50 instructions per callback. */
    static CYTHON_INLINE int __tideloop_run_in_context(PyObject *ctx, PyObject *f,
                                                      PyObject *args) {
        PyObject *r;
        if (PyContext_Enter(ctx) < 0)
            return -1;
        r = __tideloop_call_args(f, args);
        if (PyContext_Exit(ctx) < 0) {
            Py_XDECREF(r);
            return -1;
        }
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }

    /* Signals the exception a status-returning helper left pending to Cython, so that an
       except clause in the caller can take it. */
    static CYTHON_INLINE int __tideloop_raise_pending(void) {
        return -1;
    }
    """
    int run_in_context "__tideloop_run_in_context" (object ctx, object f, object args) noexcept

cdef extern from *:
    """
    /* obj.<name>(arg) as a status, like run_in_context: 0 when it returned (result dropped),
       -1 with the exception pending. The method is looked up on every call, as asyncio's
       transports do (a protocol may replace its data_received). */
    static CYTHON_INLINE int __tideloop_call_method_o(PyObject *obj, PyObject *name,
                                                     PyObject *arg) {
        PyObject *args[3] = {NULL, obj, arg};
        PyObject *r = PyObject_VectorcallMethod(name, args + 1,
                                                2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    """
    int call_method_o "__tideloop_call_method_o" (object obj, str name, object arg) noexcept
    int raise_pending "__tideloop_raise_pending" () except -1


cdef extern from *:
    """
    /* 1 if obj.<name> resolves to `impl`, the function object in the defining class's dict:
       the type (through its MRO, via the type attribute cache) yields impl and the instance has
       no dict entry shadowing it. It answers the question Cython asks before every call of a
       cpdef method on an instance of a Python subclass ("is it overridden?"), which Cython
       caches with dict version tags up to 3.11 but answers on 3.12+ with a full getattr and a
       bound method (~470 instructions). 0 means "call it the normal way", which is always
       correct: below 3.12 Cython's own check is already cheap, and on versions this was not
       written against it gives the slow but exact answer. */
    static CYTHON_INLINE int __tideloop_resolves_to(PyObject *obj, PyObject *name,
                                                   PyObject *impl) {
    #if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
        PyObject **dictptr;
        if (_PyType_Lookup(Py_TYPE(obj), name) != impl)
            return 0;
        /* 3.12/3.13: no dict is created here for a type without inline values (a subclass of
           a C type with fields never has them). */
        dictptr = _PyObject_GetDictPtr(obj);
        if (dictptr == NULL || *dictptr == NULL)
            return 1;
        if (PyDict_GetItemWithError(*dictptr, name) != NULL)
            return 0;
        if (PyErr_Occurred()) {   /* only a key's own __eq__ can fail here: take the slow path */
            PyErr_Clear();
            return 0;
        }
        return 1;
    #else
        (void)obj; (void)name; (void)impl;
        return 0;
    #endif
    }
    """
    bint resolves_to "__tideloop_resolves_to" (object obj, object name, object impl)


cdef extern from *:
    """
    /* The ready queue's list, reused across loop iterations instead of a new list each time
       (a GC-tracked allocation plus its item array, ~200 instructions per iteration). While a
       batch runs, each slot is emptied as its handle is taken, so that a finished task is
       collectable at once (asyncio's popleft does the same); the list is private to the loop
       core, so NULL slots are never seen by Python code (and list_traverse skips NULLs). */
    static CYTHON_INLINE PyObject *__tideloop_list_take(PyObject *list, Py_ssize_t i) {
        PyObject *o = PyList_GET_ITEM(list, i);
        PyList_SET_ITEM(list, i, NULL);
        return o;  /* the list's reference, now the caller's */
    }
    /* Length 0 for a list whose slots are all empty (NULL), keeping its allocation. */
    static CYTHON_INLINE void __tideloop_list_forget(PyObject *list) {
        Py_SET_SIZE(list, 0);
    }
    """
    object list_take "__tideloop_list_take" (list l, Py_ssize_t i)
    void list_forget "__tideloop_list_forget" (list l)


cdef extern from *:
    """
    #include <time.h>
    /* time.monotonic() as a C double, without the float object and the call: on Linux both
       read clock_gettime(CLOCK_MONOTONIC) and convert nanoseconds to seconds the way CPython's
       _PyTime_AsSecondsDouble does, so loop.time() equals what time.monotonic() would have
       returned at that instant. -1.0 elsewhere: the caller then calls time.monotonic(). */
    static CYTHON_INLINE double __tideloop_monotonic(void) {
    #if defined(__linux__)
        struct timespec ts;
        long long ns;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
            return -1.0;
        ns = (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
        if (ns % 1000000000LL == 0)
            return (double)(ns / 1000000000LL);
        return (double)ns / 1e9;
    #else
        return -1.0;
    #endif
    }
    """
    double c_monotonic "__tideloop_monotonic" ()


cdef extern from *:
    """
    /* Ask the CPU for an object's memory before it is needed: the GC header and the fields of
       a handle (~128 bytes). Popping 100k due timers, or running a batch of 100k handles, is
       bounded by the cache miss on each handle's first touch; fetching the next one while the
       current one is worked on overlaps the two. A hint only: it never faults, and compilers
       without the builtin get nothing. */
    static CYTHON_INLINE void __tideloop_prefetch(PyObject *o) {
    #if defined(__GNUC__) || defined(__clang__)
        const char *p = (const char *)o;
        __builtin_prefetch(p - 16, 1);
        __builtin_prefetch(p + 48, 1);
        __builtin_prefetch(p + 104, 1);
    #else
        (void)o;
    #endif
    }
    /* The i-th item of a list, if there is one (a slot already taken is NULL). Not inlined:
       inlined into _run_once's batch loop it made that loop 5% slower on short batches, where
       it never runs (100 tasks x sleep(0), 3.13), by how the compiler then laid the loop out. */
    #if defined(__GNUC__) || defined(__clang__)
    __attribute__((noinline))
    #endif
    static void __tideloop_prefetch_item(PyObject *list, Py_ssize_t i) {
        if (i < PyList_GET_SIZE(list)) {
            PyObject *o = PyList_GET_ITEM(list, i);
            if (o != NULL)
                __tideloop_prefetch(o);
        }
    }
    """
    void prefetch "__tideloop_prefetch" (PyObject *o)
    void prefetch_item "__tideloop_prefetch_item" (list l, Py_ssize_t i)
