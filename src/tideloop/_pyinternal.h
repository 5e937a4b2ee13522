/* See _pyinternal.c: CPython-internal state the compiled core reads, where it is known. */
#ifndef TIDELOOP_PYINTERNAL_H
#define TIDELOOP_PYINTERNAL_H
#if defined(__GNUC__)
#define TIDELOOP_HIDDEN __attribute__((visibility("hidden")))
#else
#define TIDELOOP_HIDDEN
#endif
/* The address of CPython's young-generation GC allocation count, or NULL. */
TIDELOOP_HIDDEN int *tideloop_gc_young_count(void);
/* offsetof(PyContext, ctx_vars), or -1. */
TIDELOOP_HIDDEN Py_ssize_t tideloop_context_vars_offset(void);
#endif
