"""The timer heap on its own: order, ties, growth, and that it owns exactly one reference per item.

Runs against whichever build is loaded (compiled, or interpreted under TIDELOOP_NO_EXTENSIONS).
"""

from __future__ import annotations

import gc
import math
import random
import sys
import weakref

from tideloop._timerheap import TimerHeap


class Item:
    def __init__(self, when: float, seq: int) -> None:
        self.key = (when, seq)


def test_pops_in_when_then_seq_order_across_growth() -> None:
    rng = random.Random(7)
    heap = TimerHeap()
    items = []
    for seq in range(5000):  # far past the initial capacity
        when = float(rng.randrange(300))  # many equal times: seq must break the ties
        item = Item(when, seq)
        items.append(item)
        heap.push(when, seq, item)
    assert heap.size() == len(heap) == 5000
    out = []
    while heap.size():
        assert heap.top_when() == heap.top().key[0]
        out.append(heap.pop())
    assert [i.key for i in out] == sorted(i.key for i in items)


def test_interleaved_push_and_pop_match_a_sorted_model() -> None:
    rng = random.Random(11)
    heap = TimerHeap()
    model: list[tuple[float, int]] = []
    seq = 0
    for _ in range(20000):
        if model and rng.random() < 0.45:
            model.sort()
            expected = model.pop(0)
            assert heap.pop().key == expected
        else:
            seq += 1
            when = rng.random()
            model.append((when, seq))
            heap.push(when, seq, Item(when, seq))
        assert heap.size() == len(model)


def test_nan_never_sorts_before_a_number() -> None:
    # asyncio compares TimerHandles with "<" on when; NaN is never smaller than anything.
    heap = TimerHeap()
    heap.push(2.0, 1, "b")
    heap.push(math.nan, 2, "nan")
    heap.push(1.0, 3, "a")
    assert heap.pop() == "a"


def test_items_and_take_all() -> None:
    heap = TimerHeap()
    for seq in range(100):
        heap.push(float(100 - seq), seq, seq)
    assert sorted(heap.items()) == list(range(100))
    assert heap.size() == 100
    taken = heap.take_all()
    assert sorted(taken) == list(range(100))
    assert heap.size() == 0
    heap.push(1.0, 1, "again")
    assert heap.pop() == "again"


class Timer:
    def __init__(self, when: float, seq: int, cancelled: bool) -> None:
        self.key = (when, seq)
        self._cancelled = cancelled


def test_remove_cancelled_keeps_the_order_of_the_rest() -> None:
    rng = random.Random(13)
    heap = TimerHeap()
    timers = []
    for seq in range(3000):
        when = float(rng.randrange(200))  # many ties: the kept seqs must still break them
        t = Timer(when, seq, cancelled=rng.random() < 0.6)
        timers.append(t)
        heap.push(when, seq, t)
    for _ in range(500):  # from a heap that has been popped from, not a fresh one
        timers.remove(heap.pop())
    before = [sys.getrefcount(t) for t in timers]
    removed = heap.remove_cancelled()
    assert sorted(t.key for t in removed) == sorted(t.key for t in timers if t._cancelled)
    assert heap.size() == sum(not t._cancelled for t in timers)
    del removed
    # one reference fewer for the removed (the returned list is gone), none for the kept
    assert [sys.getrefcount(t) for t in timers] == [
        b - 1 if t._cancelled else b for b, t in zip(before, timers, strict=True)]
    heap.push(50.5, 10_000, Timer(50.5, 10_000, cancelled=False))
    out = [heap.pop().key for _ in range(heap.size())]
    expected = sorted([t.key for t in timers if not t._cancelled] + [(50.5, 10_000)])
    assert out == expected
    assert heap.remove_cancelled() == [] and heap.size() == 0


def test_owns_one_reference_per_item_and_releases_it() -> None:
    heap = TimerHeap()
    items = [Item(float(i % 7), i) for i in range(200)]
    before = [sys.getrefcount(i) for i in items]
    for item in items:
        heap.push(item.key[0], item.key[1], item)
    del item
    assert [sys.getrefcount(i) for i in items] == [b + 1 for b in before]
    popped = [heap.pop() for _ in range(100)]
    del popped
    rest = heap.take_all()
    del rest
    assert [sys.getrefcount(i) for i in items] == before
    refs = [weakref.ref(i) for i in items]
    for item in items[:50]:
        heap.push(item.key[0], item.key[1], item)
    del items, item
    gc.collect()
    assert all(r() is not None for r in refs[:50])  # still held by the heap
    del heap  # dropping the heap releases what it still holds
    gc.collect()
    assert all(r() is None for r in refs)
