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
