"""Helpers shared by the core parity tests (fixtures live in tests/conftest.py).

Invariant: helpers only bound and observe a loop; they never depend on which loop it is.
"""

from __future__ import annotations

import asyncio
import sys

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


def run_bounded(loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> None:
    """run_forever, with a timer that stops the loop (and fails the test) if nothing else does."""
    fired: list[bool] = []

    def guard() -> None:
        fired.append(True)
        loop.stop()

    h = loop.call_later(timeout, guard)
    loop.run_forever()
    h.cancel()
    assert not fired, "run_forever was not stopped within the time limit"
