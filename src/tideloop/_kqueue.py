"""kqueue reactor (macOS, BSD). Written to the contract but untested: this project's CI is Linux.

Invariant: READ and WRITE interest are separate kernel filters; the mask we track per fd says which
of them exist, so modify adds and deletes exactly the filters that changed.
"""

from __future__ import annotations

import select
from typing import Any

from ._reactor import READ, WRITE


class KqueueReactor:
    name = "kqueue"

    def __init__(self) -> None:
        self._kq: Any = select.kqueue()  # type: ignore[attr-defined,unused-ignore]
        self._masks: dict[int, int] = {}

    def fileno(self) -> int:
        return int(self._kq.fileno())

    def _apply(self, fd: int, old: int, new: int) -> None:
        sel: Any = select
        changes = []
        for bit, flt in ((READ, sel.KQ_FILTER_READ), (WRITE, sel.KQ_FILTER_WRITE)):
            if new & bit and not old & bit:
                changes.append(sel.kevent(fd, flt, sel.KQ_EV_ADD))
            elif old & bit and not new & bit:
                changes.append(sel.kevent(fd, flt, sel.KQ_EV_DELETE))
        for change in changes:
            try:
                self._kq.control([change], 0, 0)
            except OSError:
                if change.flags & sel.KQ_EV_ADD:
                    raise  # a delete of a closed fd is fine, a failed add is not

    def register(self, fd: int, events: int) -> None:
        self._apply(fd, 0, events)
        self._masks[fd] = events

    def modify(self, fd: int, events: int) -> None:
        self._apply(fd, self._masks.get(fd, 0), events)
        self._masks[fd] = events

    def unregister(self, fd: int) -> None:
        old = self._masks.pop(fd, 0)
        try:
            self._apply(fd, old, 0)
        except OSError:
            pass

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        sel: Any = select
        kevents = self._kq.control(None, max(len(self._masks), 1) * 2,
                                   None if timeout < 0 else timeout)
        ready: dict[int, int] = {}
        for kev in kevents:
            bit = READ if kev.filter == sel.KQ_FILTER_READ else WRITE
            if kev.flags & sel.KQ_EV_ERROR:
                bit = READ | WRITE
            ready[kev.ident] = ready.get(kev.ident, 0) | bit
        return list(ready.items())

    def close(self) -> None:
        self._kq.close()
