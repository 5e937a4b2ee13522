# C helpers for _core.py's shared context copies (see "Shared context copies" there): compare and
# restore a contextvars.Context's variables, through the layout _pyinternal.c knows.
cdef extern from "_pyinternal.h":
    pass

cdef extern from *:
    """
    /* offsetof(PyContext, ctx_vars), or -1 where the layout is unknown: then nothing is
       shared (ctx_sharing() is 0) and the other helpers are never called. */
    static Py_ssize_t __tideloop_ctx_vars_off = -1;
    static void __tideloop_ctx_init(void) {
        __tideloop_ctx_vars_off = tideloop_context_vars_offset();
    }
    static CYTHON_INLINE int __tideloop_ctx_sharing(void) {
        return __tideloop_ctx_vars_off >= 0;
    }
    #define __TIDELOOP_CTX_VARS(ctx) \
        (*(PyObject **)((char *)(ctx) + __tideloop_ctx_vars_off))

    /* ctx's variables, a new reference: the mapping a copy of ctx starts from. */
    static CYTHON_INLINE PyObject *__tideloop_ctx_vars(PyObject *ctx) {
        PyObject *v = __TIDELOOP_CTX_VARS(ctx);
        Py_INCREF(v);
        return v;
    }

    /* 1 if the calling thread's current context holds exactly the variables `vars` (the same
       mapping object), so that a copy of it would hold the same values as any context made
       from `vars`. 0 if it holds others, or if the thread has no context object yet. */
    static CYTHON_INLINE int __tideloop_ctx_current_is(PyObject *vars) {
        PyObject *cur = PyThreadState_Get()->context;
        return cur != NULL && __TIDELOOP_CTX_VARS(cur) == vars;
    }

    /* Puts `vars` (borrowed) back as ctx's variables if a callback run in ctx replaced them.
       The mapping it left is dropped after the swap: its values' finalizers may run Python
       code, which must find ctx as the next handle will. */
    static CYTHON_INLINE void __tideloop_ctx_restore(PyObject *ctx, PyObject *vars) {
        PyObject **slot = &__TIDELOOP_CTX_VARS(ctx);
        PyObject *left = *slot;
        if (left != vars) {
            Py_INCREF(vars);
            *slot = vars;
            Py_DECREF(left);
        }
    }
    """
    void ctx_init "__tideloop_ctx_init" ()
    bint ctx_sharing "__tideloop_ctx_sharing" () noexcept
    object ctx_vars "__tideloop_ctx_vars" (object ctx)
    bint ctx_current_is "__tideloop_ctx_current_is" (object vars) noexcept
    void ctx_restore "__tideloop_ctx_restore" (object ctx, object vars) noexcept
