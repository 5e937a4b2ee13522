"""tideloop.EventLoop: the loop core, the public loop layer and the I/O mixins, composed once.

Invariant: this is the only place the layers meet; each mixin relies only on the private contract
documented in docs/design.md (_add_reader/_remove_reader/..., call_soon, _transports).
"""

from __future__ import annotations

from ._loop import LoopBase
from ._netloop import NetworkMixin
from ._procloop import SubprocessMixin


class EventLoop(NetworkMixin, SubprocessMixin, LoopBase):  # type: ignore[misc]  # typeshed generics
    """An asyncio event loop: use it wherever asyncio's own loop would run."""


def new_event_loop() -> EventLoop:
    """A new, not yet running tideloop loop (also usable as asyncio's ``loop_factory``)."""
    return EventLoop()
