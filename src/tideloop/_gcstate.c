/* The young-generation allocation count of CPython's cyclic GC, for the compiled core.

   Invariant: tideloop_gc_young_count() returns either the address of the counter that
   CPython's GC allocator raises for each new GC object (and lowers for each freed one), which
   starts a young collection once it passes gc.get_threshold()[0], or NULL where this build's
   layout is not known here (free-threaded builds, Python 3.14's incremental GC); callers then
   do nothing. It is the only place tideloop reads CPython's internal interpreter state, so it is
   its own translation unit: the internal headers need Py_BUILD_CORE defined before Python.h,
   which the Cython-generated module cannot do.

   Why the core wants it: see "Cyclic GC and handles" in _core.py. A handle the loop hides from
   the GC is invisible to every collection, yet its allocation still counts towards the next
   one; the core takes it off the count while the handle is hidden and puts it back as the loop
   lets go of it. */
#define Py_BUILD_CORE 1
#include <Python.h>

#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
#define TIDELOOP_GC_COUNT_KNOWN 1
#include "internal/pycore_interp.h"
#endif

#include "_gcstate.h"

int *tideloop_gc_young_count(void)
{
#ifdef TIDELOOP_GC_COUNT_KNOWN
    return &PyInterpreterState_Get()->gc.generations[0].count;
#else
    return NULL;
#endif
}
