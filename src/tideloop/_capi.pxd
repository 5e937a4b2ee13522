# C helpers for the compiled core, cimported by _core.py under `if cython.compiled`. Only a .pxd:
# nothing here is compiled into a module of its own, and the interpreted core never sees it.

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
    /* The exception being raised, as one object with its traceback, the error indicator
       cleared (only called while one is set). */
    static PyObject *__tideloop_take_raised(void) {
    #if PY_VERSION_HEX >= 0x030C0000
        return PyErr_GetRaisedException();
    #else
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        if (tb != NULL) {
            PyException_SetTraceback(v, tb);
            Py_DECREF(tb);
        }
        Py_XDECREF(t);
        return v;
    #endif
    }
    /* Handle._run's call: f(*args) inside ctx, as Context.run does it. None when the call
       returned; otherwise what it raised, as an object, the error indicator cleared. A Cython
       try statement reads the thread state and saves the handled exception on entry, for every
       callback (an out-of-line TLS read on 3.13); this way only a callback that raised pays. */
    static PyObject *__tideloop_run_in(PyObject *ctx, PyObject *f, PyObject *args) {
        PyObject *r, *exc = NULL, *exc2;
        if (PyContext_Enter(ctx) < 0)
            return __tideloop_take_raised();
        r = __tideloop_call_args(f, args);
        if (r != NULL)
            Py_DECREF(r);
        else
            exc = __tideloop_take_raised();
        if (PyContext_Exit(ctx) < 0) {
            /* As a `finally:` that raised: the new exception, chained to the callback's. */
            exc2 = __tideloop_take_raised();
            if (exc != NULL)
                PyException_SetContext(exc2, exc);  /* steals exc */
            return exc2;
        }
        if (exc == NULL)
            Py_RETURN_NONE;
        return exc;
    }
    /* Raise exc again exactly as it was raised: its traceback and __context__ untouched (a
       `raise exc` statement would chain it to whatever exception is being handled). */
    static int __tideloop_reraise(PyObject *exc) {
    #if PY_VERSION_HEX >= 0x030C0000
        Py_INCREF(exc);
        PyErr_SetRaisedException(exc);
    #else
        PyObject *tb = PyException_GetTraceback(exc);  /* new reference, stolen below */
        Py_INCREF(Py_TYPE(exc));
        Py_INCREF(exc);
        PyErr_Restore((PyObject *)Py_TYPE(exc), exc, tb);
    #endif
        return -1;
    }
    """
    object run_in "__tideloop_run_in" (object ctx, object f, object args)
    int reraise "__tideloop_reraise" (object exc) except -1
