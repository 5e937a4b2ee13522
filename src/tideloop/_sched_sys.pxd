# C entries for call_soon and call_soon_threadsafe (see "C entries for call_soon" in _core.py):
# vectorcall functions that take the common call as it comes and hand the rest to Cython's.
cdef extern from *:
    """
    /* The work of one method: (loop, callback, args tuple, context or None) -> new Handle. */
    typedef PyObject *(*__tideloop_sched_fn)(PyObject *, PyObject *, PyObject *, PyObject *);

    /* One scheduling method: the C function that does its work, and Cython's entry of the
       method, which takes every call of another shape, so that its errors (a missing
       callback, an unknown keyword) stay exactly what they were. */
    typedef struct {
        __tideloop_sched_fn impl;
        vectorcallfunc fallback;
        PyTypeObject *core_type;
        PyTypeObject *self_type;
        PyObject *context_kwnames;
        const char *name;
    } __tideloop_sched;

    static __tideloop_sched __tideloop_scheds[2];
    static PyObject *__tideloop_str_context, *__tideloop_no_args;

    /* callback, *args, context=None: the one shape asyncio's C Future and Task use (and
       nearly every other caller), called unbound (args[0] is the loop) as CPython calls
       methods. The keywords are compared by identity first: the tuple of the last caller
       whose one keyword was `context` (a call site's constant in Python code, asyncio's C
       module's own tuple), then the name, interned wherever it is a literal. */
    static PyObject *__tideloop_sched_call(__tideloop_sched *s, PyObject *func,
                                           PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames) {
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), i;
        PyObject *self, *context = Py_None, *rest, *h, *k;
        if (nargs < 1)
            goto other;
        self = args[0];
        if (Py_TYPE(self) != s->self_type) {
            if (!PyObject_TypeCheck(self, s->core_type)) {
                /* What a method descriptor says: the work below needs a loop's C fields. */
                PyErr_Format(PyExc_TypeError,
                             "descriptor '%s' for '%s' objects doesn't apply to a '%s' object",
                             s->name, s->core_type->tp_name, Py_TYPE(self)->tp_name);
                return NULL;
            }
            /* The last loop type seen, held: a type freed and another allocated at the same
               address could not pass for it. */
            Py_INCREF(Py_TYPE(self));
            Py_XSETREF(s->self_type, Py_TYPE(self));
        }
        if (nargs < 2)
            goto other;
        if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
            if (kwnames != s->context_kwnames) {
                if (PyTuple_GET_SIZE(kwnames) != 1)
                    goto other;
                k = PyTuple_GET_ITEM(kwnames, 0);
                if (k != __tideloop_str_context
                        && PyUnicode_Compare(k, __tideloop_str_context) != 0)
                    goto other;
                Py_INCREF(kwnames);
                Py_XSETREF(s->context_kwnames, kwnames);
            }
            context = args[nargs];
        }
        if (nargs == 2) {
            rest = __tideloop_no_args;
            Py_INCREF(rest);
        } else {
            rest = PyTuple_New(nargs - 2);
            if (rest == NULL)
                return NULL;
            for (i = 2; i < nargs; i++) {
                Py_INCREF(args[i]);
                PyTuple_SET_ITEM(rest, i - 2, args[i]);
            }
        }
        h = s->impl(self, args[1], rest, context);
        Py_DECREF(rest);
        return h;
    other:
        return s->fallback(func, args, nargsf, kwnames);
    }

    static PyObject *__tideloop_call_soon_entry(PyObject *func, PyObject *const *args,
                                                size_t nargsf, PyObject *kwnames) {
        return __tideloop_sched_call(&__tideloop_scheds[0], func, args, nargsf, kwnames);
    }

    static PyObject *__tideloop_call_soon_threadsafe_entry(PyObject *func,
                                                           PyObject *const *args,
                                                           size_t nargsf,
                                                           PyObject *kwnames) {
        return __tideloop_sched_call(&__tideloop_scheds[1], func, args, nargsf, kwnames);
    }

    /* Makes `impl` do the work of method `func` of `core_type` (entry `which`: 0 call_soon,
       1 call_soon_threadsafe) by putting the entry in the function object's vectorcall
       slot. Cython's method objects extend CPython's PyCFunctionObject, whose vectorcall
       field CPython calls through; a layout other than that is left alone (the method
       keeps Cython's own entry), and so are free-threaded builds, where the two cached
       objects in __tideloop_sched would need a lock. Returns 1 if installed. */
    static int __tideloop_sched_install(PyObject *core_type, PyObject *func, int which,
                                        void *impl) {
        static vectorcallfunc entries[2] = {
            __tideloop_call_soon_entry, __tideloop_call_soon_threadsafe_entry};
        static const char *names[2] = {"call_soon", "call_soon_threadsafe"};
        __tideloop_sched *s = &__tideloop_scheds[which];
        PyCFunctionObject *f = (PyCFunctionObject *)func;
    #ifdef Py_GIL_DISABLED
        return 0;
    #endif
        if (Py_TYPE(func)->tp_vectorcall_offset != offsetof(PyCFunctionObject, vectorcall)
                || f->vectorcall == NULL)
            return 0;
        if (__tideloop_str_context == NULL) {
            __tideloop_str_context = PyUnicode_InternFromString("context");
            if (__tideloop_str_context == NULL)
                return -1;
            __tideloop_no_args = PyTuple_New(0);
            if (__tideloop_no_args == NULL)
                return -1;
        }
        Py_INCREF(core_type);
        s->core_type = (PyTypeObject *)core_type;
        s->impl = (__tideloop_sched_fn)impl;
        s->name = names[which];
        s->fallback = f->vectorcall;
        f->vectorcall = entries[which];
        return 1;
    }
    """
    int sched_install "__tideloop_sched_install" (object core_type, object func, int which,
                                                 void *impl) except -1
