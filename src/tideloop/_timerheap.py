"""The loop's timer queue: a min-heap of items keyed by (when, seq).

Invariants: ``pop()`` returns the item with the smallest (when, seq), comparing ``when`` first and
``seq`` only between equal times (a NaN ``when`` compares as asyncio's heap of TimerHandles
would: never smaller); the heap owns one reference to each item until ``pop()``, ``take_all()``
or ``remove_cancelled()`` hands it back. The loop gives every timer a unique, increasing
``seq``, so timers due at the same time come out in the order they were scheduled, also after
``remove_cancelled()``, which keeps each remaining item's key.

Compiled, it is a 4-ary heap in two parallel arrays: the keys inline in a C array of
(when, seq), and the items in a Python list (which owns them, so the cyclic GC sees every pending
timer through the loop). A node's four children sit side by side, so a sift touches about one
cache line of keys per level and never the timer objects themselves; comparing through pointers
into timers scattered over memory dominated the cost of large timer sets. Interpreted, a list
of (when, seq, item) tuples kept by ``heapq``, the fastest heap plain Python has.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - interpreted without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.cpython.mem import (  # type: ignore[import-not-found]
        PyMem_Free,
        PyMem_Realloc,
    )
    from cython.cimports.cpython.ref import PyObject  # type: ignore[import-not-found]
    from cython.cimports.tideloop._capi import prefetch  # type: ignore[import-not-found]

_MIN_CAPACITY = 64


class TimerHeap:
    """(when, seq)-ordered heap of timer handles; see the module docstring."""

    # Compiled fields come from _timerheap.pxd; these are for mypy and the interpreted heap.
    _keys: Any  # compiled: C array of (when, seq), parallel to _items
    _cap: int
    _items: list[Any]  # compiled: the items, _items[i] keyed by _keys[i]
    _list: list[tuple[float, int, Any]]  # interpreted: heapq's entries

    def __init__(self) -> None:
        self._cap = 0
        self._items = []
        self._list = []

    def __dealloc__(self) -> None:
        if cython.compiled:
            PyMem_Free(self._keys)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        if cython.compiled:
            return len(self._items)
        return len(self._list)

    def push(self, when: float, seq: int, item: Any) -> None:
        if not cython.compiled:
            heappush(self._list, (when, seq, item))
            return
        pos = len(self._items)
        if pos == self._cap:
            self._grow()
        self._items.append(item)  # the list owns the item: the GC sees it through the loop
        keys = self._keys
        objs = _ob_item(self._items)
        # Sift up: move parents down until the new key's place is found. Items move as raw
        # pointers inside the list (ownership stays with the list), keys inside the C array.
        while pos > 0:
            parent = (pos - 1) >> 2
            if not _key_lt(when, seq, keys[parent].when, keys[parent].seq):
                break
            keys[pos] = keys[parent]
            objs[pos] = objs[parent]
            pos = parent
        keys[pos].when = when
        keys[pos].seq = seq
        objs[pos] = cython.cast(cython.pointer(PyObject), item)

    def top(self) -> Any:
        """The first item (the heap must not be empty)."""
        if cython.compiled:
            return self._items[0]
        return self._list[0][2]

    def top_when(self) -> float:
        """The first item's time (the heap must not be empty)."""
        if cython.compiled:
            return self._keys[0].when
        return self._list[0][0]

    def pop(self) -> Any:
        """Remove and return the first item (the heap must not be empty)."""
        if not cython.compiled:
            return heappop(self._list)[2]
        keys = self._keys
        objs = _ob_item(self._items)
        n = len(self._items) - 1
        # Swap the root into the last place and let list.pop() hand it over with its
        # reference; then restore the heap over the n remaining slots.
        last_key = keys[n]
        last_obj = objs[n]
        objs[n] = objs[0]
        top = self._items.pop()
        if n == 0:
            return top
        objs = _ob_item(self._items)  # pop() may have shrunk (moved) the list's array
        # Floyd's variant: walk the hole at the root down to a leaf along the smallest child,
        # then sift the former last slot up from there; fewer comparisons than a plain sift-down.
        pos = 0
        child = 1
        while child < n:
            end = child + 4
            if end <= n:
                # All four children exist: a tournament of three comparisons whose results
                # become indices by arithmetic, not branches. Random deadlines make each
                # comparison a coin flip, and a mispredicted branch per comparison cost more
                # than the comparisons themselves (valgrind --branch-sim: 16 misses per pop).
                c = child + _key_lt_flat(keys[child + 1].when, keys[child + 1].seq,
                                         keys[child].when, keys[child].seq)
                best = child + 2 + _key_lt_flat(keys[child + 3].when, keys[child + 3].seq,
                                                keys[child + 2].when, keys[child + 2].seq)
                best = c + (best - c) * _key_lt_flat(keys[best].when, keys[best].seq,
                                                     keys[c].when, keys[c].seq)
            else:
                best = child
                c = child + 1
                while c < n:
                    if _key_lt(keys[c].when, keys[c].seq, keys[best].when, keys[best].seq):
                        best = c
                    c += 1
            keys[pos] = keys[best]
            objs[pos] = objs[best]
            pos = best
            child = 4 * pos + 1
        while pos > 0:
            parent = (pos - 1) >> 2
            if not _key_lt(last_key.when, last_key.seq, keys[parent].when, keys[parent].seq):
                break
            keys[pos] = keys[parent]
            objs[pos] = objs[parent]
            pos = parent
        keys[pos] = last_key
        objs[pos] = last_obj
        # The loop reads (and writes) the next root right after this pop when many timers are
        # due at once; fetching it now overlaps its cache miss with the caller's work on top.
        prefetch(objs[0])
        return top

    def items(self) -> list[Any]:
        """Every item, in no particular order; the heap keeps them."""
        if cython.compiled:
            return self._items[:]
        return [entry[2] for entry in self._list]

    def take_all(self) -> list[Any]:
        """Empty the heap and return its items, in no particular order."""
        if cython.compiled:
            out = self._items
            self._items = []
            return out
        out = [entry[2] for entry in self._list]
        self._list = []
        return out

    def remove_cancelled(self) -> list[Any]:
        """Remove the items whose ``_cancelled`` is true and return them; the rest keep their keys
        (so their order). Rare (the loop calls it when most timers are cancelled): the rest are
        pushed again rather than heapified, so there is one sift code for each direction."""
        if not cython.compiled:
            removed = [e[2] for e in self._list if e[2]._cancelled]
            self._list = [e for e in self._list if not e[2]._cancelled]
            heapify(self._list)
            return removed
        old = self._items
        keys = self._keys
        self._items = []
        removed = []
        for i in range(len(old)):
            item = old[i]
            if item._cancelled:
                removed.append(item)
            else:
                # Pushed back with its own key. The heap holds fewer than i items here, so push
                # writes key slots below i only: keys[i] is still this item's when it is read.
                self.push(keys[i].when, keys[i].seq, item)
        return removed

    def _grow(self) -> None:
        if cython.compiled:
            cap = self._cap * 2 if self._cap else _MIN_CAPACITY
            keys = PyMem_Realloc(self._keys, cap * cython.sizeof(self._keys[0]))
            if not keys:
                raise MemoryError()
            # _Key is the C struct declared in _timerheap.pxd (a name only the compiler sees).
            self._keys = cython.cast(cython.pointer(_Key), keys)  # type: ignore[name-defined]  # noqa: F821
            self._cap = cap


def _ob_item(items: list[Any]) -> Any:
    # The list's item array, for moving references without touching their counts.
    if cython.compiled:
        # PyListObject is declared in _timerheap.pxd (a name only the compiler sees).
        return cython.cast(cython.pointer(PyListObject), items).ob_item  # type: ignore[name-defined]  # noqa: F821
    return items


def _key_lt(when_a: float, seq_a: int, when_b: float, seq_b: int) -> bool:
    if when_a != when_b:
        return when_a < when_b
    return seq_a < seq_b


def _key_lt_flat(when_a: float, seq_a: int, when_b: float, seq_b: int) -> int:
    # _key_lt as 0 or 1 without a branch: & and | evaluate both sides. NaN compares false
    # both ways, so a NaN deadline is never smaller here either.
    return int((when_a < when_b) | ((when_a == when_b) & (seq_a < seq_b)))
