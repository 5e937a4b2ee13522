"""Entry points that run a coroutine on tideloop: run(), Runner, and the legacy policy install().

Invariant: these are asyncio.Runner/asyncio.run with tideloop's loop factory, so cancellation of
leftovers, async generator and executor shutdown, and Ctrl-C handling are exactly asyncio's.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import _compat
from ._eventloop import EventLoop, new_event_loop

_T = TypeVar("_T")


class Runner(asyncio.Runner):  # type: ignore[misc]  # final in typeshed only
    """asyncio.Runner on a tideloop loop (any other ``loop_factory`` may still be given)."""

    def __init__(self, *, debug: bool | None = None,
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        super().__init__(debug=debug, loop_factory=loop_factory or new_event_loop)


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new tideloop loop and return its result, like asyncio.run()."""
    if _compat.get_running_loop_or_none() is not None:
        # Same check and message shape as asyncio.run, before the coroutine is touched.
        raise RuntimeError("tideloop.run() cannot be called from a running event loop")
    with Runner(debug=debug) as runner:
        return runner.run(main)


def _base_policy() -> type:
    # 3.14 deprecates the policy system and renames the base class with a leading underscore.
    events: Any = asyncio.events
    base = getattr(events, "BaseDefaultEventLoopPolicy", None)
    if base is None:  # pragma: no cover - 3.14+
        base = events._BaseDefaultEventLoopPolicy
    return base  # type: ignore[no-any-return]


class EventLoopPolicy(_base_policy()):  # type: ignore[misc]
    """An event loop policy whose new_event_loop() makes tideloop loops (legacy API)."""

    def _loop_factory(self) -> EventLoop:  # used by BaseDefaultEventLoopPolicy
        return new_event_loop()

    def new_event_loop(self) -> EventLoop:
        return new_event_loop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def install() -> None:
    """Make asyncio.new_event_loop()/asyncio.run() use tideloop, for code that takes no factory.

    Prefer ``tideloop.run(main())`` or
    ``asyncio.run(main(), loop_factory=tideloop.new_event_loop)``:
    policies are deprecated from Python 3.14 on.
    """
    if sys.version_info >= (3, 14):
        warnings.warn("tideloop.install() relies on asyncio event loop policies, which are "
                      "deprecated since Python 3.14; use tideloop.run(main()) or "
                      "asyncio.run(main(), loop_factory=tideloop.new_event_loop)",
                      DeprecationWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(EventLoopPolicy())
