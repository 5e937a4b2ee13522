/* See _gcstate.c: the address of CPython's young-generation GC allocation count, or NULL. */
#ifndef TIDELOOP_GCSTATE_H
#define TIDELOOP_GCSTATE_H
#if defined(__GNUC__)
__attribute__((visibility("hidden")))
#endif
int *tideloop_gc_young_count(void);
#endif
