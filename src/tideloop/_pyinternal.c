/* The two pieces of CPython's internal state the compiled core reads.

   Invariant: each function returns either where this build keeps the state, or a "not known
   here" value (NULL, -1) for builds whose layout this file does not know (free-threaded builds,
   Python 3.14 and later); callers then leave the state alone and take the plain path. It is
   the only place tideloop reads CPython's internal state, so it is its own translation unit:
   the internal headers need Py_BUILD_CORE defined before Python.h, which the Cython-generated
   module cannot do.

   - tideloop_gc_young_count(): the counter CPython's GC allocator raises for each new GC object
     (and lowers for each freed one); a young collection starts once it passes
     gc.get_threshold()[0]. A handle the loop hides from the GC is invisible to every
     collection, yet its allocation still counts towards the next one: the core takes it off
     the count while the handle is hidden and puts it back as the loop lets go of it (see
     "Cyclic GC and handles" in _core.py).
   - tideloop_context_vars_offset(): where a contextvars.Context keeps its variables (an
     immutable mapping, replaced as a whole by every ContextVar.set()). Two contexts whose
     mappings are the same object hold the same values, which is what lets the core give
     handles one copy of the caller's context instead of one each (see "Shared context
     copies" in _core.py). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>

#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
#define TIDELOOP_LAYOUT_KNOWN 1
#include "internal/pycore_context.h"
#include "internal/pycore_interp.h"
#endif

#include "_pyinternal.h"

int *tideloop_gc_young_count(void)
{
#ifdef TIDELOOP_LAYOUT_KNOWN
    return &PyInterpreterState_Get()->gc.generations[0].count;
#else
    return NULL;
#endif
}

Py_ssize_t tideloop_context_vars_offset(void)
{
#ifdef TIDELOOP_LAYOUT_KNOWN
    return (Py_ssize_t)offsetof(PyContext, ctx_vars);
#else
    return -1;
#endif
}
