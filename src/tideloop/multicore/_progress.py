"""Progress display for ``Pool(progress=True)``: tqdm when installed, else a one-line stderr bar.

Invariant: nothing is ever drawn unless stderr is a terminal, and redraws are throttled (10 Hz)
so that a fast map does not spend its time printing.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    def __init__(self, name: str, total: int | None) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._enabled = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0
        if not self._enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=total, desc=name, unit="item", leave=True)

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        step = done - self.done
        self.done = done
        if self._bar is not None:
            self._bar.update(step)
            return
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or done == self.total:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            width = 30
            filled = int(width * self.done / self.total)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = f"{left:.0f}s" if left != float("inf") else "?"
            line = (
                f"\r{self.name} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} {rate:.1f} it/s ETA {eta}"
            )
        else:
            line = f"\r{self.name} {self.done} {rate:.1f} it/s"
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self) -> None:
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        self._draw(time.monotonic())
        sys.stderr.write("\n")
        sys.stderr.flush()
        self._enabled = False
